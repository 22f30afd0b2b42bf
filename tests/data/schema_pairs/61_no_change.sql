-- from
CREATE TABLE t (id INT PRIMARY KEY, a INT);
-- to
create table t (id int not null, a int default null, primary key (id));
