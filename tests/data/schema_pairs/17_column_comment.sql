-- from
CREATE TABLE t (id INT PRIMARY KEY, a INT COMMENT 'old');
-- to
CREATE TABLE t (id INT PRIMARY KEY, a INT COMMENT 'new, with "quotes"');
