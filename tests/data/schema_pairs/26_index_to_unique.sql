-- from
CREATE TABLE t (id INT PRIMARY KEY, a INT, KEY ix (a));
-- to
CREATE TABLE t (id INT PRIMARY KEY, a INT, UNIQUE KEY ix (a));
