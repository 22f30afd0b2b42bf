-- from
CREATE TABLE t (a INT, b INT, c INT, d INT, id INT PRIMARY KEY);
-- to
CREATE TABLE t (id INT PRIMARY KEY, d INT, c INT, b INT, a INT);
