-- from
CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT, KEY ix (a));
-- to
CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT, KEY ix (a, b));
