-- from
CREATE TABLE t (id INT PRIMARY KEY);
-- to
CREATE TABLE t (id INT PRIMARY KEY) COMMENT='orders'' table = big';
