-- from
CREATE TABLE t (id INT PRIMARY KEY, qty INT);
-- to
CREATE TABLE t (id INT PRIMARY KEY, qty INT, CONSTRAINT qty_pos CHECK (qty >= 0));
