"""Throwaway development servers: private Redis and MariaDB processes and Celery workers.

Not part of schemabot's domain nor of an engine: `make demo` (schemabot/demo.py), the benchmarks
and the tests start them. See `devservers/servers.py`.
"""
