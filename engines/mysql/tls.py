"""TLS for MySQL/MariaDB connections, from DSN parameters (targets and the state database).

    mysql://user:pw@db.internal:3306/shop?ssl_ca=/etc/ca.pem&ssl_mode=VERIFY_IDENTITY
    mysql://user:pw@db.internal:3306/shop?ssl_ca=...&ssl_cert=/etc/client.pem&ssl_key=/etc/client.key

`ssl_mode` has the MySQL client's meanings:

    DISABLED         no TLS
    PREFERRED        TLS when the server offers it, unverified (pymysql's default)
    REQUIRED         TLS or no connection; the certificate is not verified
    VERIFY_CA        TLS, and the server certificate must chain to `ssl_ca` (or the system CAs)
    VERIFY_IDENTITY  VERIFY_CA, and the certificate must name the host of the DSN

Without `ssl_mode`: VERIFY_CA when `ssl_ca` is given, REQUIRED when only a client certificate is,
else PREFERRED. `ssl_cert` + `ssl_key` present a client certificate (users `REQUIRE X509`).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any

import pymysql

MODES = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
OPTIONS = frozenset({"ssl_mode", "ssl_ca", "ssl_cert", "ssl_key"})


def tls_connect_args(options: Mapping[str, str]) -> dict[str, Any]:
    """pymysql.connect keyword arguments for the DSN's `ssl_*` options (empty: pymysql's default).

    Raises ValueError for an unknown `ssl_*` option or mode, or a key without its certificate.
    """
    unknown = sorted(k for k in options if k.startswith("ssl") and k not in OPTIONS)
    if unknown:
        raise ValueError(f"unknown TLS option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")
    ca, cert, key = options.get("ssl_ca"), options.get("ssl_cert"), options.get("ssl_key")
    if bool(cert) != bool(key):
        raise ValueError("ssl_cert and ssl_key go together (a client certificate and its key)")
    mode = (options.get("ssl_mode") or ("VERIFY_CA" if ca else "REQUIRED" if cert else "")).upper()
    if mode and mode not in MODES:
        raise ValueError(f"ssl_mode {options.get('ssl_mode')!r} is not one of {', '.join(MODES)}")
    if mode == "DISABLED":
        return {"ssl_disabled": True}
    if mode in ("", "PREFERRED"):
        return {}
    context = ssl.create_default_context(cafile=ca) if mode.startswith("VERIFY") else _unverified()
    if mode == "VERIFY_CA":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
    if cert and key:
        context.load_cert_chain(cert, key)
    return {"ssl": context}


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Connection(pymysql.connections.Connection):
    """pymysql's connection, with PREFERRED mode's TLS context made once per process.

    For PREFERRED (no TLS option), pymysql builds a new `ssl.create_default_context()` for
    every connection, which loads the system's CA bundle: about 23 ms of CPU per connection on
    our 2-core machines, for certificates that mode never looks at (it verifies nothing:
    `CERT_NONE`, no host name check). An engine step opens up to five connections (copy lanes
    and their checksum peers), on the same cores as the server it is copying on; the CLI's
    fast status path opens one per command. The other modes keep pymysql's own construction.
    """

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if isinstance(sslp, dict) and not sslp:
            return preferred_context()
        return super()._create_ssl_ctx(sslp)  # type: ignore[misc]


@functools.cache
def preferred_context() -> ssl.SSLContext:
    """What PREFERRED verifies, without the CA bundle it does not use: encryption when the
    server offers it, no verification. An `SSLContext` is meant to be shared by connections."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def open_connection(**kwargs: Any) -> pymysql.connections.Connection:
    """`pymysql.connect(**kwargs)`, through `Connection`: the engines' connections to targets,
    the binlog reader's, the replicas' for throttling, and the state database's (its SQLAlchemy
    engine's `do_connect`) go through here."""
    return Connection(**kwargs)
