-- from
CREATE TABLE t (id INT PRIMARY KEY);
-- to

