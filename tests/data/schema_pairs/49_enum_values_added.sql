-- from
CREATE TABLE t (id INT PRIMARY KEY, st ENUM('a','b'));
-- to
CREATE TABLE t (id INT PRIMARY KEY, st ENUM('a','b','c d') NOT NULL DEFAULT 'a');
