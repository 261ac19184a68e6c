"""The client commands of the `mocapd` CLI: ``submit``, ``resume``, ``status``, ``download``, ``jobs``
(``export`` and ``avatars`` are in `mocapd.client.more_commands`).

A thin layer over `JobRunner`: options, progress bars (rich, on standard error), ``--json`` output on
standard output, and exit codes from `mocapd.client.errors` (0 done, 1 other error, 2 usage,
3 input rejected, 4 job failed or canceled, 5 server unreachable (the record is kept for
``mocapd resume``), 6 download verification failed, 130 interrupted).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from mocapd.client.errors import EXIT_ERROR, EXIT_JOB_FAILED, EXIT_OK, ClientError, JobFailed
from mocapd.client.records import RecordStore, ResumeRecord, default_state_dir

if TYPE_CHECKING:
    from mocapd.client.flow import JobRunner

__all__ = ["DEFAULT_URL", "parse_trim", "register_client_commands"]

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_INTERRUPTED = 130
T = TypeVar("T")

Url = Annotated[str, typer.Option("--url", envvar="MOCAPD_URL", help="Base URL of the mocapd API.")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="MOCAPD_API_KEY", help="API key (sk_live_...).", show_default=False)
]
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="MOCAPD_STATE_DIR", help="Where resume records live (default: the user's state directory).",
                 show_default=False),
]
OutDir = Annotated[Path | None, typer.Option("--out", help="Folder for the artifacts (default: ./JOB_ID).")]
Download = Annotated[bool, typer.Option("--download/--no-download", help="Download the artifacts.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of progress bars.")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for one HTTP answer.", min=0.1)]
GiveUp = Annotated[
    float,
    typer.Option("--give-up-after", help="Seconds of continuous failure before exiting with 5 (resume later).", min=0.0),
]


def parse_trim(text: str | None) -> tuple[float | None, float | None]:
    """``"1.2:13.8"`` -> (1.2, 13.8); either side may be empty (``"2:"``, ``":10"``)."""
    if text is None:
        return None, None
    start_s, sep, end_s = text.partition(":")
    if not sep:
        raise typer.BadParameter("use START:END in seconds, e.g. 1.2:13.8")
    try:
        start = float(start_s) if start_s.strip() else None
        end = float(end_s) if end_s.strip() else None
    except ValueError:
        raise typer.BadParameter("START and END must be numbers of seconds") from None
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter("END must be after START")
    return start, end


def _store(state_dir: Path | None) -> RecordStore:
    return RecordStore(state_dir if state_dir is not None else default_state_dir())


def _emit(as_json: bool, payload: Any, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    else:
        human()


def _err(message: str) -> None:
    sys.stderr.write(f"mocapd: {message}\n")


def _client(url: str, api_key: str | None, timeout_s: float) -> Any:
    """A `MocapdClient`, or exit with the usage error when no key was given."""
    from mocapd.client.api import MocapdClient

    if not api_key:
        _err("no API key: pass --api-key or set MOCAPD_API_KEY")
        raise typer.Exit(EXIT_ERROR)
    return MocapdClient(url, api_key, timeout_s=timeout_s)


@contextmanager
def _runner(url: str, api_key: str | None, state_dir: Path | None, timeout_s: float, give_up_s: float, as_json: bool,
            label: str = "") -> Iterator[Any]:
    from mocapd.client.flow import JobRunner
    from mocapd.client.progress import NullReporter, Reporter, RichReporter
    from mocapd.client.retry import RetryPolicy

    client = _client(url, api_key, timeout_s)
    reporter: Reporter = NullReporter() if as_json else RichReporter(label=label)
    try:
        yield JobRunner(client, _store(state_dir), reporter=reporter, policy=RetryPolicy(give_up_after_s=give_up_s))
    finally:
        reporter.close()
        client.close()


def _print_record(record: ResumeRecord) -> None:
    print(f"{record.job_id}: {record.terminal_status or record.job_status or record.stage.value}")
    for art in record.artifacts.values():
        if art.verified and art.path:
            print(f"  {art.path}  ({art.bytes} bytes, sha256 {art.sha256})")


def _fail(exc: ClientError, as_json: bool, record: ResumeRecord | None = None) -> NoReturn:
    if as_json:
        payload = {"ok": False, **exc.to_dict()}
        if record is not None:
            payload["record"] = record.summary()
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    else:
        _err(exc.message)
        if record is not None and record.unfinished and record.job_id:
            _err(f"the job is kept in {record.record_id}; `mocapd resume` continues it")
    raise typer.Exit(exc.exit_code)


def submit(
    video: Annotated[Path, typer.Argument(help="The video to upload.", exists=True, dir_okay=False, readable=True)],
    target: Annotated[list[str] | None, typer.Option("--target", "-t", help="Target (repeatable): default, unitree_g1, avatar:<avatarId>.")] = None,
    fps: Annotated[int, typer.Option("--fps", help="Export frame rate: 24, 30, 60 or 120.")] = 30,
    trim: Annotated[str | None, typer.Option("--trim", help="START:END in seconds, e.g. 1.2:13.8.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="A title for the job.")] = None,
    mocap_type: Annotated[str, typer.Option("--mocap-type", help="full_body or upper_body.")] = "full_body",
    hands: Annotated[bool, typer.Option("--hands", help="Finger motion too (starter and premium plans).")] = False,
    quality: Annotated[str | None, typer.Option("--quality", help="Pose model: standard, or high (the larger model; starter and premium plans).")] = None,
    out: OutDir = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the result (or stop once admitted).")] = True,
    download: Download = True,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    state_dir: StateDir = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
    give_up_s: GiveUp = 600.0,
) -> None:
    """Create a job for VIDEO, upload it, wait for the motion and download every artifact (verified)."""
    from mocapd.client.flow import JobRequest

    start_s, end_s = parse_trim(trim)
    request = JobRequest(target_ids=tuple(target or ["default"]), export_fps=fps, mocap_type=mocap_type, title=title,
                         trim_start_s=start_s, trim_end_s=end_s, model_quality=quality,
                         hand_tracking=hands)

    def drive(runner: JobRunner, keep: Callable[[ResumeRecord], None]) -> ResumeRecord:
        record = runner.start(video, request, out, download=download)
        keep(record)
        return runner.run(record, wait=wait)

    _drive_job(drive, url=url, api_key=api_key, state_dir=state_dir, timeout_s=timeout_s, give_up_s=give_up_s,
               as_json=as_json)


def _drive_job(
    drive: Callable[[JobRunner, Callable[[ResumeRecord], None]], ResumeRecord],
    *,
    url: str,
    api_key: str | None,
    state_dir: Path | None,
    timeout_s: float,
    give_up_s: float,
    as_json: bool,
    label: str = "",
    extra: dict[str, Any] | None = None,
) -> None:
    """Run ``drive(runner, keep)`` with progress bars, then print the record (``extra`` joins the JSON)
    or fail with the record ``keep`` was last given (so the message can point at `mocapd resume`)."""
    kept: list[ResumeRecord] = []
    error: ClientError | None = None
    record: ResumeRecord | None = None
    with _runner(url, api_key, state_dir, timeout_s, give_up_s, as_json, label=label) as runner:
        try:
            record = drive(runner, kept.append)
        except ClientError as exc:
            error = exc  # reported once the progress bars are closed
        except KeyboardInterrupt:
            _err("interrupted; `mocapd resume` continues the job")
            raise typer.Exit(EXIT_INTERRUPTED) from None
    if error is not None:
        _fail(error, as_json, kept[-1] if kept else None)
    assert record is not None
    done = record
    _emit(as_json, {"ok": True, **(extra or {}), "record": done.summary()}, lambda: _print_record(done))


def rejected(exc: ClientError) -> ClientError:
    """A 4xx refusal other than 429 as `InputRejected` (exit 3: sending it again would not help)."""
    from mocapd.client.errors import ApiError, InputRejected

    if isinstance(exc, ApiError) and 400 <= exc.status < 500 and exc.status != 429:
        return InputRejected.from_api(exc)
    return exc


def _call(url: str, api_key: str | None, timeout_s: float, as_json: bool, fn: Callable[[Any], T], *,
          refusal_rejects: bool = True) -> T:
    """``fn(client)`` on a fresh client; a failure is reported and exits (with ``refusal_rejects``, a
    refusal as input rejected, see `rejected`)."""
    with _client(url, api_key, timeout_s) as client:
        try:
            return fn(client)
        except ClientError as exc:
            _fail(rejected(exc) if refusal_rejects else exc, as_json)


ResumeUrl = Annotated[
    str | None,
    typer.Option("--url", help="Base URL of the mocapd API, when it has moved (default: the server each job was "
                 "created on, kept in its record).", show_default=False),
]


def resume(
    jobs: Annotated[list[str] | None, typer.Argument(help="Job ids (or record ids) to continue (default: all unfinished).")] = None,
    url: ResumeUrl = None,
    api_key: ApiKey = None,
    state_dir: StateDir = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
    give_up_s: GiveUp = 600.0,
) -> None:
    """Continue every unfinished job from its resume record (each against the server it was created on, or --url)."""
    store = _store(state_dir)
    if jobs:
        records = []
        for ident in jobs:
            rec = store.find_job(ident)
            if rec is None:
                _err(f"no resume record for {ident} under {store.dir}")
                raise typer.Exit(EXIT_ERROR)
            records.append(rec)
    else:
        records = store.unfinished()
    results: list[dict[str, Any]] = []
    worst = EXIT_OK
    for rec in records:
        if url is not None and url.rstrip("/") != rec.base_url.rstrip("/"):
            rec.base_url = url.rstrip("/")  # the server moved: this and every later resume goes there
            store.save(rec)
        with _runner(rec.base_url, api_key, state_dir, timeout_s, give_up_s, as_json, label=rec.job_id or "") as runner:
            try:
                runner.run(rec)
                results.append({"ok": True, "record": rec.summary()})
                if not as_json:
                    _print_record(rec)
            except ClientError as exc:
                worst = max(worst, exc.exit_code)
                results.append({"ok": False, **exc.to_dict(), "record": rec.summary()})
            except KeyboardInterrupt:
                _err("interrupted; run `mocapd resume` again to continue")
                raise typer.Exit(EXIT_INTERRUPTED) from None
        if not as_json and not results[-1]["ok"]:
            _err(str(results[-1]["message"]))
    _emit(as_json, {"ok": worst == EXIT_OK, "results": results},
          lambda: None if records else print("nothing to resume"))
    raise typer.Exit(worst)


def status(
    job: Annotated[str, typer.Argument(help="The job id.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    state_dir: StateDir = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
) -> None:
    """Show a job's status, stage, progress, billing and error (exit 4 if it failed or was canceled)."""
    record = _store(state_dir).find_job(job)
    base = record.base_url if record is not None and url == DEFAULT_URL else url
    data = _call(base, api_key, timeout_s, as_json, lambda c: c.get_job(job).data, refusal_rejects=False)
    j = data["job"]
    payload = {"ok": True, "job": j, "events": data.get("events", []),
               "record": record.summary() if record is not None else None}

    def human() -> None:
        print(f"{j['id']}: {j['status']} (stage {j['stage']}, {100 * float(j.get('progress') or 0):.0f} %)")
        billing = j.get("billing") or {}
        print(f"  credits held {billing.get('heldVCredits')}, charged {billing.get('chargedVCredits')}, "
              f"refunded {billing.get('refundedVCredits')}")
        if j.get("error"):
            e = j["error"]
            print(f"  error {e.get('code')} at stage {e.get('stage')}: {e.get('message')} [retryFrom: {e.get('retryFrom')}]")
        if record is not None:
            print(f"  local record {record.record_id}: {record.stage.value}")

    _emit(as_json, payload, human)
    if j["status"] in ("failed", "canceled"):
        raise typer.Exit(EXIT_JOB_FAILED)


def download(
    job: Annotated[str, typer.Argument(help="The job id.")],
    out: OutDir = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    state_dir: StateDir = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
    give_up_s: GiveUp = 600.0,
) -> None:
    """Download and verify a job's artifacts (waits for the job first if it is still running)."""
    record = _store(state_dir).find_job(job)
    base = record.base_url if record is not None and url == DEFAULT_URL else url
    error: ClientError | None = None
    with _runner(base, api_key, state_dir, timeout_s, give_up_s, as_json, label=job) as runner:
        try:
            record = runner.download(job, out if out is not None else Path.cwd() / job)
        except ClientError as exc:
            error = exc
    if error is not None:
        _fail(error, as_json, None if isinstance(error, JobFailed) else _store(state_dir).find_job(job))
    assert record is not None
    _emit(as_json, {"ok": True, "record": record.summary()}, lambda: _print_record(record))


def jobs(
    status_filter: Annotated[str | None, typer.Option("--status", help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many jobs.", min=1, max=200)] = 20,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    state_dir: StateDir = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
) -> None:
    """List the account's jobs, newest first, with the local record's stage where there is one."""
    local = {r.job_id: r for r in _store(state_dir).all() if r.job_id}
    data = _call(url, api_key, timeout_s, as_json, lambda c: c.list_jobs(limit=limit, status=status_filter).data,
                 refusal_rejects=False)
    items = data.get("items", [])
    for item in items:
        rec = local.get(item.get("id"))
        item["localRecord"] = rec.stage.value if rec is not None else None

    def human() -> None:
        for item in items:
            local_stage = f"  [local: {item['localRecord']}]" if item["localRecord"] else ""
            print(f"{item['id']}  {item['status']:<10} {item['stage']:<12} {item.get('createdAt')}  "
                  f"{item.get('title') or ''}{local_stage}")
        if not items:
            print("no jobs")

    _emit(as_json, {"ok": True, "items": items, "nextCursor": data.get("nextCursor")}, human)


def register_client_commands(app: typer.Typer) -> None:
    """Add ``submit``, ``resume``, ``status``, ``download``, ``jobs``, ``export`` and ``avatars`` to the
    `mocapd` Typer app."""
    app.command("submit")(submit)
    app.command("resume")(resume)
    app.command("status")(status)
    app.command("download")(download)
    app.command("jobs")(jobs)
    from mocapd.client.more_commands import register_more_commands

    register_more_commands(app)


def main(argv: list[str] | None = None) -> None:
    """Run the client commands alone (``python -m mocapd.client``)."""
    app = typer.Typer(name="mocapd", help="mocapd client: submit videos, resume, status, download, jobs, export, avatars.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register_client_commands(app)
    app(args=argv, prog_name="mocapd")


