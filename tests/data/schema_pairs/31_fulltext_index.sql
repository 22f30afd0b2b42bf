-- from
CREATE TABLE t (id INT PRIMARY KEY, body TEXT);
-- to
CREATE TABLE t (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY ft (body));
