-- from
CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT);
-- to
CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT, KEY ix_a (a));
