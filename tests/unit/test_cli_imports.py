"""Issue 15 §4: the CLI imports what a command needs inside that command, so `schemabot --help`
answers without Celery, SQLAlchemy, sqlglot or FastAPI (bench/cli_latency.py measures it)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("celery", "sqlalchemy", "sqlglot", "fastapi", "uvicorn", "httpx", "rich", "pydantic")


def _modules_after(argv: list[str]) -> list[str]:
    """The heavy modules imported by running the `schemabot` entry point with `argv`."""
    code = (
        "import sys\n"
        "from schemabot.fast_status import main\n"
        f"code = main({argv!r})\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('HEAVY', ','.join(heavy))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "SCHEMABOT_DATABASE_URL": "sqlite:////nonexistent/state.db"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("HEAVY")][-1]
    return [m for m in line.removeprefix("HEAVY").strip().split(",") if m]


def test_help_imports_no_heavy_library() -> None:
    assert _modules_after(["--help"]) == []


def test_a_command_s_help_imports_no_heavy_library() -> None:
    assert _modules_after(["plan", "--help"]) == []
    assert _modules_after(["log", "--help"]) == []
