"""Issue 14 §5: TLS to MySQL targets and to a MySQL state database, against a throwaway mariadbd
with certificates made here and `require_secure_transport=ON`."""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pymysql
import pytest
import sqlalchemy as sa

from engines.mysql.connections import connect
from engines.targets import Target
from tests.support.processes import REPO
from tests.support.serve import SCHEMABOT
from tests.support.tls import TlsMariaDB, make_pki, tls_mariadb

pytestmark = pytest.mark.integration

PASSWORD = "tls-pw"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMariaDB]:
    with tls_mariadb(tmp_path_factory.mktemp("tls")) as s:
        s.admin(
            f"CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}'",
            "GRANT ALL PRIVILEGES ON *.* TO 'app'@'%'",
            f"CREATE USER 'certonly'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509",
            "GRANT ALL PRIVILEGES ON *.* TO 'certonly'@'%'",
            "CREATE DATABASE shop CHARACTER SET utf8mb4",
            "CREATE DATABASE state CHARACTER SET utf8mb4",
        )
        yield s


def dsn(
    server: TlsMariaDB, user: str = "app", host: str = "127.0.0.1", schema: str = "shop", **options: str
) -> str:
    query = f"?{urlencode(options)}" if options else ""
    return f"mysql://{user}:{PASSWORD}@{host}:{server.port}/{schema}{query}"


def cipher(conn: pymysql.Connection) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    conn.close()
    return str(row[1]) if row else ""


def test_plain_connections_are_refused_by_the_server(server: TlsMariaDB) -> None:
    with pytest.raises(pymysql.err.OperationalError):
        connect(Target("t", dsn(server, ssl_mode="DISABLED"))).close()


def test_target_dsn_tls_modes(server: TlsMariaDB, tmp_path: Path) -> None:
    ca = str(server.pki.ca)
    assert cipher(connect(Target("t", dsn(server, ssl_ca=ca, ssl_mode="VERIFY_IDENTITY"))))
    assert cipher(connect(Target("t", dsn(server, host="localhost", ssl_ca=ca, ssl_mode="VERIFY_IDENTITY"))))
    assert cipher(connect(Target("t", dsn(server, ssl_ca=ca, ssl_mode="VERIFY_CA"))))
    assert cipher(connect(Target("t", dsn(server, ssl_mode="REQUIRED"))))  # encrypted, not verified
    # A certificate from another CA is refused when verifying.
    other = make_pki(tmp_path / "other", ca_name="someone else")
    for mode in ("VERIFY_CA", "VERIFY_IDENTITY"):
        with pytest.raises(pymysql.err.OperationalError) as refused:
            connect(Target("t", dsn(server, ssl_ca=str(other.ca), ssl_mode=mode))).close()
        assert "certificate" in str(refused.value).lower()
    # A client certificate for a user that requires one.
    assert cipher(
        connect(
            Target(
                "t",
                dsn(
                    server,
                    user="certonly",
                    ssl_ca=ca,
                    ssl_mode="VERIFY_IDENTITY",
                    ssl_cert=str(server.pki.client_cert),
                    ssl_key=str(server.pki.client_key),
                ),
            )
        )
    )
    with pytest.raises(pymysql.err.OperationalError):
        connect(Target("t", dsn(server, user="certonly", ssl_ca=ca, ssl_mode="VERIFY_IDENTITY"))).close()
    with pytest.raises(ValueError, match="ssl_mode"):
        connect(Target("t", dsn(server, ssl_mode="SOMETIMES")))
    with pytest.raises(ValueError, match="ssl_cacert"):
        connect(Target("t", dsn(server, ssl_cacert=ca)))


def test_preferred_mode_encrypts_from_one_context_per_process(
    server: TlsMariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a TLS option (PREFERRED): encrypted when the server offers it, verifying nothing,
    and every connection shares one TLS context. pymysql's own construction loads the system's CA
    bundle for each connection (about 23 ms of CPU), for a mode that never looks at it."""
    bundles: list[ssl.SSLContext] = []
    load_default_certs = ssl.SSLContext.load_default_certs

    def counted(context: ssl.SSLContext, *args: object) -> None:
        bundles.append(context)
        load_default_certs(context, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", counted)
    first, second = connect(Target("t", dsn(server))), connect(Target("t", dsn(server)))
    assert first.ctx is second.ctx
    assert cipher(first) and cipher(second)
    assert bundles == []
    # The state database's connections too (its SQLAlchemy engine's do_connect).
    from schemabot.storage.database import make_engine

    engine = make_engine(dsn(server, schema="state").replace("mysql://", "mysql+pymysql://", 1))
    try:
        with engine.connect() as state:
            assert state.connection.driver_connection.ctx is first.ctx  # type: ignore[union-attr]
            assert state.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'").one()[1]
    finally:
        engine.dispose()
    assert bundles == []
    # What the count would have seen: pymysql's own PREFERRED connection loads the bundle.
    pymysql.connect(host="127.0.0.1", port=server.port, user="app", password=PASSWORD).close()
    assert len(bundles) == 1


def test_state_database_over_tls(server: TlsMariaDB) -> None:
    from schemabot.settings import Settings
    from schemabot.storage.database import Database

    url = dsn(server, schema="state", ssl_ca=str(server.pki.ca), ssl_mode="VERIFY_IDENTITY")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMABOT_")}
    env.update({"SCHEMABOT_DATABASE_URL": url, "PYTHONPATH": str(REPO)})
    result = subprocess.run(
        [SCHEMABOT, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    db = Database(Settings(database_url=url).database_url)
    try:
        status = db.run(
            lambda s: s.execute(sa.text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).one(), write=False
        )
        assert status[1], "the state database connection is not encrypted"
        assert db.run(lambda s: s.execute(sa.text("SELECT COUNT(*) FROM apply")).scalar(), write=False) == 0
    finally:
        db.dispose()
