"""What is wrong with the configured database, in one sentence an operator can act on.

Connecting to PostgreSQL the first time fails in a few well-known ways (no such role, no such database,
a refused password, nothing listening, a role that may not create tables); the driver says so deep in
a long chained exception. `explain_database_error` turns such an exception into one line naming what to
create or fix; `DatabaseUnavailable` carries it (a `SystemFault`: retrying later may well work).
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from mocapd.errors import SystemFault

__all__ = ["DatabaseUnavailable", "explain_database_error", "safe_url"]


class DatabaseUnavailable(SystemFault):
    """The database cannot be used as configured; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("internal_error", message)


def safe_url(url: str) -> str:
    """The URL with its password masked (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an unreadable URL)"


def _driver_text(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


def explain_database_error(exc: BaseException, url: str) -> str | None:
    """One line saying what is wrong and what to do; None for an exception that is not about reaching
    or setting up the database (a bug should keep its traceback)."""
    try:
        u = make_url(url)
    except Exception:
        return f"MOCAPD_DATABASE_URL is not a database URL ({url!r}): use postgresql+psycopg://user@host/db"
    if isinstance(exc, ArgumentError):
        return f"MOCAPD_DATABASE_URL is not a usable database URL ({safe_url(url)}): {exc}"
    if isinstance(exc, (NoSuchModuleError, ModuleNotFoundError)):
        if u.get_backend_name() == "postgresql":
            return "the PostgreSQL driver is not installed: pip install 'mocapd[postgres]'"
        return f"no driver for {u.drivername!r} (MOCAPD_DATABASE_URL): use postgresql+psycopg://user@host/db"
    if not isinstance(exc, DBAPIError):
        return None
    text = _driver_text(exc)
    where = f"{u.host or 'localhost'}:{u.port or 5432}"
    user, name = u.username or "(none)", u.database or "(none)"
    if u.get_backend_name() == "sqlite":
        if "unable to open database file" in text or "readonly database" in text:
            return (f"the SQLite database {u.database} cannot be opened for writing: check that its folder "
                    "exists and is writable (MOCAPD_DATA_DIR)")
        return f"the SQLite database {u.database} failed: {text.splitlines()[0]}"
    if m := re.search(r'role "([^"]+)" does not exist', text):
        return (f"the database role '{m[1]}' does not exist on {where}: create it (as a superuser: "
                f"CREATE ROLE \"{m[1]}\" LOGIN;) or fix the user in MOCAPD_DATABASE_URL")
    if m := re.search(r'database "([^"]+)" does not exist', text):
        return (f"the database '{m[1]}' does not exist on {where}: create it (as a superuser: "
                f"CREATE DATABASE \"{m[1]}\" OWNER \"{user}\";) or fix the name in MOCAPD_DATABASE_URL")
    if m := re.search(r'password authentication failed for user "([^"]+)"', text):
        return f"PostgreSQL on {where} refused the password of role '{m[1]}': fix it in MOCAPD_DATABASE_URL"
    if "no password supplied" in text or "fe_sendauth" in text:
        return (f"PostgreSQL on {where} wants a password for role '{user}': put it in MOCAPD_DATABASE_URL "
                "(postgresql+psycopg://user:password@host/db)")
    if "no pg_hba.conf entry" in text:
        return (f"PostgreSQL on {where} does not accept connections from this machine for role '{user}' to "
                f"database '{name}': add a line to its pg_hba.conf")
    if "permission denied for schema" in text or "permission denied for database" in text:
        return (f"the role '{user}' may not create tables in database '{name}' on {where}: make it the "
                f"database's owner (as a superuser: ALTER DATABASE \"{name}\" OWNER TO \"{user}\";)")
    if "Connection refused" in text:
        return f"nothing answers on {where}: is PostgreSQL running there and listening on TCP (listen_addresses)?"
    if "resolve host" in text or "translate host name" in text or "Name or service not known" in text:
        return f"the database host '{u.host}' cannot be resolved: fix the host in MOCAPD_DATABASE_URL"
    if "timeout expired" in text or "timed out" in text:
        return f"no answer from {where} in time: is the host reachable (firewall, security group)?"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"the database at {safe_url(url)} cannot be used: {first}"
