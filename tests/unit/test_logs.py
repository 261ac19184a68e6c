"""The log format: one key=value line per record, whatever the record carries."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from mocapd.logs import configure_logging, log_event, parse_level


class Captured:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """Logging configured as a command does; pytest swaps sys.stderr for each test after that, and the
    records still reach the current one."""
    root, ours = logging.getLogger(), logging.getLogger("mocapd")
    saved = (list(root.handlers), root.level, ours.level)
    configure_logging("info")
    try:
        yield Captured(capsys)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ours.setLevel(saved[2])


def test_a_record_is_one_line_of_key_value_pairs(captured: Captured) -> None:
    log = logging.getLogger("mocapd.worker")
    log_event(log, "claim", job="mocap_1", attempt=1, worker="h:1:ab", note=None)
    log_event(log, "retry", level=logging.WARNING, job="mocap_1", error='bad "thing"\nsecond line', stage="a b")
    logging.getLogger("mocapd.api").info("plain text with = and\nnewline")
    lines = captured.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("level=info logger=mocapd.worker event=claim job=mocap_1 attempt=1 worker=h:1:ab")
    assert lines[0].startswith("ts=") and "note=" not in lines[0]
    assert "error=" + json.dumps('bad "thing"\nsecond line') in lines[1]
    assert 'stage="a b"' in lines[1] and "level=warning" in lines[1]
    assert lines[2].endswith('msg="plain text with = and\\nnewline"')


def test_an_exception_keeps_its_traceback_on_the_same_line(captured: Captured) -> None:
    try:
        raise KeyError("x")
    except KeyError:
        logging.getLogger("mocapd.api").exception("unhandled error on %s", "/p")
    (line,) = captured.getvalue().splitlines()
    assert "error=\"KeyError: 'x'\"" in line and 'traceback="Traceback (most recent call last):' in line


def test_levels() -> None:
    assert parse_level(None) == parse_level("") == parse_level("INFO") == logging.INFO
    assert parse_level(" debug ") == logging.DEBUG
    with pytest.raises(ValueError, match="MOCAPD_LOG_LEVEL='verbose' is not a log level"):
        parse_level("verbose")


def test_other_libraries_log_from_warning_up(captured: Captured) -> None:
    logging.getLogger("botocore").info("noise")
    logging.getLogger("botocore").warning("worth seeing")
    assert [line.rsplit("msg=", 1)[1] for line in captured.getvalue().splitlines()] == ['"worth seeing"']
