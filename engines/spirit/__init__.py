"""The spirit engine: online schema changes for MySQL 8 and MariaDB by shadow table and triggers.

See README.md in this package for the resume rules.
"""

from engines.spirit.engine import SpiritEngine

__all__ = ["SpiritEngine"]
