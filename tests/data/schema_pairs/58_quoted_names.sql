-- from
CREATE TABLE t (`id` INT PRIMARY KEY, `select` INT, `we``ird` INT);
-- to
CREATE TABLE t (`id` INT PRIMARY KEY, `we``ird` BIGINT, `select` INT, `new col` INT, KEY `my key` (`new col`));
