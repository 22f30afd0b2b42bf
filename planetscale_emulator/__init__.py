"""A local emulator of the PlanetScale HTTP API, backed by a real MariaDB/MySQL server.

The planetscale engine, the tests and users' local development all run against it with the same
engine code. Start it with `schemabot emulator ...` or `python -m planetscale_emulator`.
See engines/planetscale/README.md.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Serve the emulator; flags: --port, --mysql-dsn, --org, --database, --keyspaces..."""
    from planetscale_emulator.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
