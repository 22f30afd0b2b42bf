-- The state database (schemabot) is created by MYSQL_DATABASE; `app` is the demo target.
CREATE DATABASE IF NOT EXISTS app CHARACTER SET utf8mb4;
