"""Logging of the service processes: one line per record, ``key=value`` pairs (logfmt), on standard error.

``configure_logging()`` is called by every `mocapd` command and in every process they start (API
processes, worker processes), with the level from ``MOCAPD_LOG_LEVEL`` (debug, info, warning, error;
default info). Our loggers (``mocapd.*``) log at that level; other libraries only from warning up.

Records made with `log_event` carry their fields; any other record has its text in ``msg``::

    ts=2026-12-06T02:41:07.120Z level=info logger=mocapd.worker event=claim job=mocap_ab12 attempt=1 worker=h:42:9f

A value with a space, a quote, an ``=`` or a line break is written as a JSON string, so a record is one
line whatever it carries. An exception is shown as ``error="Type: message"`` and its traceback as one
quoted ``traceback=`` value on the same line; at the debug level the traceback follows as plain lines.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

__all__ = ["LEVEL_ENV", "KeyValueFormatter", "configure_logging", "log_event", "parse_level"]

LEVEL_ENV = "MOCAPD_LOG_LEVEL"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}
_FIELDS = "mocapd_fields"
_MARK = "_mocapd_handler"


def parse_level(text: str | None) -> int:
    """``"info"`` -> `logging.INFO`; unset or empty is info; anything else is a ValueError that names the choices."""
    if text is None or not text.strip():
        return logging.INFO
    try:
        return _LEVELS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"{LEVEL_ENV}={text!r} is not a log level: use one of {', '.join(_LEVELS)}") from None


def _value(v: object) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str) if isinstance(v, (dict, list, tuple)) else str(v)
    if s == "" or any(c in s for c in ' "=\\') or not s.isprintable():
        return json.dumps(s)
    return s


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... <fields or msg=...>`` on one line."""

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        pairs: list[tuple[str, object]] = [("ts", ts), ("level", record.levelname.lower()), ("logger", record.name)]
        fields = getattr(record, _FIELDS, None)
        if isinstance(fields, dict):
            pairs += [(k, v) for k, v in fields.items() if v is not None]
        else:
            pairs.append(("msg", record.getMessage()))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            pairs.append(("error", f"{type(exc).__name__}: {exc}".strip().rstrip(":")))
            if not self.tracebacks:  # kept, as one quoted value, so the record stays one line
                pairs.append(("traceback", self.formatException(record.exc_info)))
        line = " ".join(f"{k}={_value(v)}" for k, v in pairs)
        if self.tracebacks and record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not to the one it was created
    with (a test runner or a daemonising wrapper may have replaced it since)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: int | str | None = None) -> int:
    """Send log records to standard error, one key=value line each; returns the level in force.

    ``level`` defaults to ``$MOCAPD_LOG_LEVEL`` (info). Calling it again replaces the handler it installed.
    """
    lvl = level if isinstance(level, int) else parse_level(level if level is not None else os.environ.get(LEVEL_ENV))
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _MARK, False):
            root.removeHandler(h)
    handler = _StderrHandler(sys.stderr)
    setattr(handler, _MARK, True)
    handler.setFormatter(KeyValueFormatter(tracebacks=lvl <= logging.DEBUG))
    root.addHandler(handler)
    root.setLevel(max(lvl, logging.WARNING))  # other libraries: warnings and up
    logging.getLogger("mocapd").setLevel(lvl)
    return lvl


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, exc_info: bool = False,
              **fields: Any) -> None:
    """One structured record: ``event=<event>`` and ``fields`` (None values are left out)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS: {"event": event, **fields}}, exc_info=exc_info)
