-- from
CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT, KEY ia (a), KEY ib (b));
-- to
CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT, KEY ib (b), KEY ia (a));
