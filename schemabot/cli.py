"""The `schemabot` command line.

    schemabot apply --target NAME --engine ENGINE [--namespace NS] --ddl SQL [--ddl SQL ...]
                    [--defer-cutover] [--idempotency-key KEY] [--wait] [--json]
                    [--after APPLY_ID | --queue]
    schemabot status APPLY_ID [--json]
    schemabot watch APPLY_ID
    schemabot list [--state STATE] [--limit 1-1000] [--json]
    schemabot stop|start|cutover|cancel|revert|skip-revert|adopt APPLY_ID
    schemabot volume APPLY_ID LEVEL
    schemabot log APPLY_ID [--json]
    schemabot db upgrade
    schemabot demo
    schemabot serve [--host H] [--port P]
    schemabot token new NAME [--scope read|apply|admin] [--target T ...]
    schemabot emulator --port P --mysql-dsn DSN --org ORG --database DB --keyspaces KS1,KS2
    schemabot plan --target NAME (--ddl SQL ... | --schema-dir DIR) [--engine auto] [--json]
    schemabot plan show APPLY_ID [--json]

Exit codes: 0 success; 1 the apply did not end as asked, a control was refused, or a service (the
state database, PlanetScale for a Vitess plan) is unavailable; 2 bad input (one line on stderr,
nothing stored); 3 a plan has blocking findings.

Start-up cost: this module imports click and the standard library only; each command imports
what it needs (SQLAlchemy, the producer API, Celery, sqlglot, FastAPI) when it runs, so `--help`
and a read answer in a fraction of a second (issue 15 §4; bench/cli_latency.py measures it,
tests/unit/test_cli_imports.py keeps it so).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from schemabot.errors import ControlRejected, NotFound, ProviderError, StorageUnavailable, ValidationError

if TYPE_CHECKING:
    from schemabot.api import Client

F = TypeVar("F", bound=Callable[..., Any])


class Exit(click.exceptions.Exit):
    pass


def _fail(code: int, message: str) -> None:
    from engines.targets import redact

    click.echo(f"error: {redact(message)}", err=True)
    raise Exit(code)


def _missing_tables(exc: BaseException) -> bool:
    """Whether `exc` is SQLAlchemy's DBAPIError for tables that do not exist yet.

    Looked up in sys.modules rather than imported: if SQLAlchemy was never imported, no
    command could have raised its error, and importing it here would cost every command."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.DBAPIError):
        return False
    text = str(exc.orig).lower()
    return "no such table" in text or "doesn't exist" in text


def handles_errors(func: F) -> F:
    """Turn schemabot's errors into one line on stderr and the documented exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValidationError, NotFound) as exc:
            _fail(2, str(exc))
        except ControlRejected as exc:
            _fail(1, f"refused: {exc}")
        except StorageUnavailable as exc:
            _fail(1, str(exc))
        except ProviderError as exc:
            _fail(1, f"provider: {exc}")
        except Exception as exc:
            if _missing_tables(exc):
                _fail(1, "the state database has no schemabot tables yet; run `schemabot db upgrade`")
            raise

    return wrapper  # type: ignore[return-value]


def _client() -> Client:
    from schemabot.api import Client
    from schemabot.settings import get_settings

    settings = get_settings()
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        # Connecting would create an empty file here and then report missing tables.
        _fail(
            1,
            f"no state database at {missing} (SCHEMABOT_DATABASE_URL="
            f"{settings.database_url!r}); set SCHEMABOT_DATABASE_URL to the one your workers use "
            "(`make demo` prints its own at the end), or create one with `schemabot db upgrade`",
        )
    return Client(settings)


def _missing_sqlite_file(url: str) -> str | None:
    """The path of an SQLite state database that does not exist (None: exists, or not SQLite)."""
    if not url.startswith("sqlite"):
        return None
    from pathlib import Path

    import sqlalchemy as sa

    path = sa.engine.make_url(url).database
    if not path or path == ":memory:" or Path(path).exists():
        return None
    return path


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Online schema changes for MySQL and Vitess that survive any crash."""


@cli.command()
@click.option("--target", required=True, help="Target name (SCHEMABOT_TARGET_<NAME>).")
@click.option("--engine", required=True, help="direct, spirit, planetscale, or auto (choose per plan).")
@click.option("--namespace", default=None, help="Schema or keyspace (default: the target DSN's schema).")
@click.option("--ddl", "ddls", multiple=True, help="One statement; repeat for more.")
@click.option(
    "--schema-dir",
    default=None,
    help="Apply what a plan of these CREATE TABLE files (Vitess: and vschema.json files) says.",
)
@click.option("--allow-unsafe", is_flag=True, help="Let destructive changes through (audited).")
@click.option("--requested-by", default=None, help="Who asks (audit log; default: the login name).")
@click.option("--defer-cutover", is_flag=True, help="Wait at waiting_for_cutover until `cutover`.")
@click.option("--skip-revert", is_flag=True, help="Finish without a revert window (Vitess).")
@click.option(
    "--atomic/--no-atomic",
    default=None,
    help="Cut all tables over together (default: on for spirit when all tables share a schema).",
)
@click.option("--volume", type=int, default=None, help="1 (gentle) to 11 (fast).")
@click.option("--idempotency-key", default=None, help="The same key returns the same apply.")
@click.option("--wait", "wait_", is_flag=True, help="Block until it ends (or waits as asked).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--after", default=None, metavar="APPLY_ID", help="Wait in pending until that apply ends.")
@click.option("--queue", is_flag=True, help="Wait behind an unfinished apply on the same tables.")
@handles_errors
def apply(
    target: str,
    engine: str,
    namespace: str | None,
    ddls: tuple[str, ...],
    defer_cutover: bool,
    skip_revert: bool,
    atomic: bool | None,
    volume: int | None,
    idempotency_key: str | None,
    wait_: bool,
    as_json: bool,
    schema_dir: str | None = None,
    allow_unsafe: bool = False,
    requested_by: str | None = None,
    after: str | None = None,
    queue: bool = False,
) -> None:
    """Submit a schema change."""
    from schemabot.api import ChangeSet, asked_to_wait
    from schemabot.states import State

    client = _client()
    if not ddls and not schema_dir:
        raise ValidationError("Missing option '--ddl' (or --schema-dir)")
    if ddls and schema_dir:
        raise ValidationError("give --ddl statements or --schema-dir, not both")
    planned = None
    if engine == "auto" or schema_dir:  # plan first, then submit what the plan says (plan_cli.py)
        from schemabot.plan_cli import submit_from_plan

        options = {
            "defer_cutover": defer_cutover,
            "skip_revert": skip_revert,
            "volume": volume,
            "atomic": atomic,
            "queue": queue,
            "after": after,
        }
        planned = submit_from_plan(
            client, target, engine, namespace, list(ddls), schema_dir, allow_unsafe, requested_by,
            idempotency_key=idempotency_key, **options,
        )
    result = planned or client.submit_apply(
        target,
        engine,
        [ChangeSet(ddl=list(ddls), namespace=namespace)],
        defer_cutover=defer_cutover,
        skip_revert=skip_revert,
        volume=volume,
        idempotency_key=idempotency_key,
        allow_unsafe=allow_unsafe,
        requested_by=requested_by or _login_name(),
        queue=queue,
        after=after,
        atomic=atomic,
    )
    if as_json:
        _print_json({"apply_id": result.apply_id})
    else:
        click.echo(result.apply_id)
    if wait_:
        status = client.wait(result.apply_id)
        # `wait` returns in a waiting state only when the apply asked for it: a deferred cutover,
        # or the revert window a Vitess deploy opens unless --skip-revert. Both are success, as
        # for `watch`; anything else short of completed is not.
        ok = status.state == State.COMPLETED.value or asked_to_wait(status, status.state)
        if not as_json:
            click.echo(
                f"{status.apply_id} {status.state}" + (f": {status.error}" if status.error else ""),
                err=not ok,
            )
        raise Exit(0 if ok else 1)


@cli.command()
@click.argument("apply_id")
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def status(apply_id: str, as_json: bool) -> None:
    """Show an apply and its tasks."""
    st = _client().get_apply(apply_id)
    if as_json:
        _print_json(st.to_dict())
        return
    from schemabot.plan_cli import status_lines  # the engine a plan chose per table, and why
    from schemabot.status_text import render

    click.echo(render(st, st.tasks), nl=False)
    for line in status_lines(_client(), apply_id):
        click.echo(line)


@cli.command()
@click.argument("apply_id")
@handles_errors
def watch(apply_id: str) -> None:
    """Live progress bars until the apply ends."""
    from schemabot.api import asked_to_wait
    from schemabot.states import State
    from schemabot.watch import watch as run_watch

    client = _client()
    final = run_watch(client, apply_id)
    ok = final.state == State.COMPLETED.value or asked_to_wait(final, final.state)
    raise Exit(0 if ok else 1)


@cli.command(name="list")
@click.option("--state", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def list_(state: str | None, limit: int, as_json: bool) -> None:
    """List recent applies."""
    applies = _client().list_applies(state, limit)
    if as_json:
        _print_json([a.to_dict() for a in applies])
        return
    from schemabot.status_text import list_lines  # shared with the quick path (fast_status.py)

    for a in applies:
        for line in list_lines(a):
            click.echo(line)


def _control_command(kind: str, doc: str) -> None:
    @cli.command(name=kind.replace("_", "-"), help=doc)
    @click.argument("apply_id")
    @handles_errors
    def command(apply_id: str) -> None:
        receipt = _client().request_control(apply_id, kind)
        note = "" if receipt.created else " (already pending)"
        click.echo(f"{kind.replace('_', '-')} requested for {apply_id}{note}")


for _kind, _doc in (
    ("stop", "Stop an apply (resumable with start)."),
    ("start", "Start a stopped apply."),
    ("cutover", "Cut over an apply waiting for cutover."),
    ("cancel", "Cancel an apply and clean up."),
    ("revert", "Revert a change in its revert window."),
    ("skip_revert", "End the revert window now."),
    ("adopt", "Let an apply that needs attention find its branch and deploy request by name and tag."),
):
    _control_command(_kind, _doc)


@cli.command()
@click.argument("apply_id")
@click.argument("level", type=int)
@handles_errors
def volume(apply_id: str, level: int) -> None:
    """Set the speed of a running apply (1 to 11)."""
    _client().request_control(apply_id, "volume", level)
    click.echo(f"volume {level} requested for {apply_id}")


@cli.command()
@click.argument("apply_id")
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def log(apply_id: str, as_json: bool) -> None:
    """The audit log of an apply."""
    entries = _client().log(apply_id)
    if as_json:
        _print_json([e.__dict__ for e in entries])
        return
    from schemabot.status_text import log_line  # shared with the quick path (fast_status.py)

    for e in entries:
        click.echo(log_line(e))


@cli.group()
def db() -> None:
    """State database administration."""


@db.command()
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Create or migrate the state database's tables."""
    import sqlalchemy as sa

    from schemabot.migrate import explain
    from schemabot.migrate import upgrade as run_upgrade
    from schemabot.settings import get_settings

    url = get_settings().database_url
    try:
        run_upgrade(revision, url)
    except sa.exc.DBAPIError as exc:
        message = explain(exc, url)
        if message is None:
            raise
        _fail(1, message)
    click.echo("state database is up to date")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve the HTTP API (see schemabot/http_api.py for the routes).

    With API tokens configured (SCHEMABOT_API_TOKENS or [[tokens]] in the targets file) every
    endpoint but /healthz, /readyz and the API document needs one. Without, it runs in
    development mode: no authentication, and loopback addresses only.
    """
    import uvicorn

    from schemabot.auth import is_loopback
    from schemabot.http_api import build_app
    from schemabot.settings import get_settings

    settings = get_settings()
    if not settings.api_tokens:
        if not is_loopback(host):
            _fail(
                2,
                f"no API token is configured, so the service has no authentication and may only listen "
                f"on loopback, not {host!r}: configure SCHEMABOT_API_TOKENS (see `schemabot token new`) "
                "or serve on 127.0.0.1",
            )
        click.echo(
            "schemabot serve: DEVELOPMENT MODE: no API token configured, serving WITHOUT "
            f"authentication on {host}:{port} (loopback only)",
            err=True,
        )
    else:
        click.echo(
            f"schemabot serve: {len(settings.api_tokens)} API token(s) configured; "
            f"answering to Host {', '.join(settings.http_allowed_hosts)}",
            err=True,
        )
        if not is_loopback(host) and all(is_loopback(h) for h in settings.http_allowed_hosts):
            click.echo(
                "schemabot serve: warning: listening beyond loopback but answering only to loopback "
                "host names: list the names clients use in SCHEMABOT_HTTP_ALLOWED_HOSTS",
                err=True,
            )
    uvicorn.run(build_app(), host=host, port=port, log_level="info")


@cli.group()
def token() -> None:
    """API tokens of the HTTP service."""


@token.command(name="new")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "apply", "admin"]), default="apply", show_default=True)
@click.option("--target", "targets", multiple=True, help="Restrict the token to this target; repeatable.")
def token_new(name: str, scope: str, targets: tuple[str, ...]) -> None:
    """Make a token: prints the secret (give it to the client) and the entry to configure."""
    from schemabot.auth import ApiToken, hash_secret, new_secret

    secret = new_secret()
    entry = ApiToken(name=name, sha256=hash_secret(secret), scope=scope, targets=list(targets) or None)  # type: ignore[arg-type]
    document = entry.model_dump(mode="json", exclude_none=True)
    click.echo(f"secret (shown once; the client sends `Authorization: Bearer <secret>`):\n  {secret}")
    click.echo("add to SCHEMABOT_API_TOKENS (a JSON list):\n  " + json.dumps(document))
    toml_targets = f"\ntargets = {json.dumps(list(targets))}" if targets else ""
    click.echo(
        "or to the targets TOML file:\n"
        f'  [[tokens]]\n  name = "{name}"\n  sha256 = "{entry.sha256}"\n  scope = "{scope}"{toml_targets}'
    )


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.pass_context
def emulator(ctx: click.Context) -> None:
    """Serve the local PlanetScale API emulator (flags: --port --mysql-dsn --org --database
    --keyspaces ...; `schemabot emulator --help` lists them)."""
    from planetscale_emulator import main as emulator_main

    raise Exit(emulator_main(list(ctx.args)))


@cli.command()
@click.option("--rows", default=600_000, show_default=True, help="Rows in the demo table.")
@click.option("--engine", default=None, help="Engine for the demo (default: spirit, else direct).")
def demo(rows: int, engine: str | None) -> None:
    """Run a schema change end to end on local services, with live progress."""
    from schemabot.demo import run_demo

    raise Exit(run_demo(rows=rows, engine=engine))


def _login_name() -> str:
    from schemabot.planning.service import _current_user

    return _current_user()


from schemabot.plan_cli import plan as _plan_command  # noqa: E402  (plan_cli uses handles_errors)

cli.add_command(_plan_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: click's usage errors become one line and exit code 2."""
    try:
        # Without standalone mode click *returns* the code of an Exit raised by a command.
        result = cli.main(args=argv, prog_name="schemabot", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return 2
    except click.Abort:
        click.echo("aborted", err=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
