"""The throwaway `mariadbd` the tests and the bench start must leave the machine's shared server
alone.

A MariaDB server deletes every `#sql*` file in its temporary directory when it starts (leftover
temporary tables of an earlier life). Started with the default /tmp, a throwaway server deleted
the shared server's temporary tables while they were in use: a query of another test failed with
"Error on delete of '/tmp/#sql-temptable-...MAI' (Errcode: 2)", and the shared server once went
down with signal 11 in `ha_maria::drop_table`.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest

from devservers.servers import MariaDBServer

pytestmark = pytest.mark.integration


def test_a_throwaway_server_keeps_its_temporary_files_to_itself(tmp_path: Path) -> None:
    # Named like a temporary table of another server, in the default temporary directory.
    name = f"#sql-sbtest-{uuid.uuid4().hex}"
    others = [Path(tempfile.gettempdir()) / f"{name}.{ext}" for ext in ("MAI", "MAD")]
    for path in others:
        path.write_bytes(b"")
    server = MariaDBServer(tmp_path / "server")
    try:
        server.start()
        server.execute("SELECT 1")
        assert all(path.exists() for path in others), "the server deleted another's temporary files"
    finally:
        server.kill()
        for path in others:
            path.unlink(missing_ok=True)
