#!/bin/bash
# The PlanetScale emulator's own MySQL user: its schemas (prefix psemu) and CREATE USER only, so
# it can give each branch password a user of its own with grants on that branch alone.
# Run once by the mysql image's entrypoint, on the first start of an empty data directory.
set -euo pipefail
mysql --protocol=socket -uroot -p"${MYSQL_ROOT_PASSWORD}" <<SQL
CREATE USER IF NOT EXISTS 'emulator'@'%' IDENTIFIED WITH mysql_native_password BY '${EMULATOR_MYSQL_PASSWORD}';
GRANT ALL PRIVILEGES ON \`psemu%\`.* TO 'emulator'@'%' WITH GRANT OPTION;
GRANT CREATE USER ON *.* TO 'emulator'@'%';
SQL
