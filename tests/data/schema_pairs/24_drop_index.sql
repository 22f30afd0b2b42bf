-- from
CREATE TABLE t (id INT PRIMARY KEY, a INT, KEY ix_a (a));
-- to
CREATE TABLE t (id INT PRIMARY KEY, a INT);
