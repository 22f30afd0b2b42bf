"""Throwaway servers for tests (the implementation is shared with `make demo`)."""

from schemabot.local_services import MariaDBServer, RedisServer, free_port, wait_for

__all__ = ["MariaDBServer", "RedisServer", "free_port", "wait_for"]
