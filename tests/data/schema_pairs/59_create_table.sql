-- from

-- to
CREATE TABLE t (id INT PRIMARY KEY, a INT, KEY ia (a)) COMMENT='new';
