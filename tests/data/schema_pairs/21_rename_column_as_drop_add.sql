-- from
CREATE TABLE t (id INT PRIMARY KEY, old_name INT);
-- to
CREATE TABLE t (id INT PRIMARY KEY, new_name INT);
