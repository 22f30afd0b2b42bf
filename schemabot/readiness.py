"""What `/readyz` checks: can this process reach the state database and the broker right now?

Each check is blocking and is run in a thread under a short timeout by the caller
(schemabot/http_api.py), so a black-holed server makes the answer 503, never a hung probe.
"""

from __future__ import annotations

import sqlalchemy as sa

from schemabot import messaging
from schemabot.storage.database import Database


def check_database(db: Database) -> None:
    """One round trip on a fresh or pooled connection; raises if the state database is down."""
    with db.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def check_broker(url: str, timeout: float) -> None:
    """Open (and close) one broker connection; raises if the broker is down."""
    messaging.check_broker(url, timeout)
