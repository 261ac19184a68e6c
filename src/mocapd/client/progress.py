"""Progress reporting: a small protocol the flow calls, a silent default, and rich progress bars."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NullReporter", "Reporter", "RichReporter"]


class Reporter(Protocol):
    def note(self, message: str) -> None: ...
    def upload(self, sent_bytes: int, total_bytes: int) -> None: ...
    def processing(self, status: str, stage: str | None, progress: float) -> None: ...
    def download(self, name: str, done_bytes: int, total_bytes: int | None) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    """Reports nothing (library use, ``--json``)."""

    def note(self, message: str) -> None:
        pass

    def upload(self, sent_bytes: int, total_bytes: int) -> None:
        pass

    def processing(self, status: str, stage: str | None, progress: float) -> None:
        pass

    def download(self, name: str, done_bytes: int, total_bytes: int | None) -> None:
        pass

    def close(self) -> None:
        pass


class RichReporter:
    """Bars on standard error: one for the upload, one for processing (job.progress, labelled with the
    stage), one per downloaded file. rich is imported only when bars are wanted."""

    def __init__(self, *, label: str = "") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self._bytes = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                               console=self.console, transient=False)
        self._pct = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                             console=self.console, transient=False)
        self._label = f"{label} " if label else ""
        self._tasks: dict[str, Any] = {}
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self._bytes.start()
            self._pct.start()
            self._started = True

    def note(self, message: str) -> None:
        self.console.print(f"[dim]{self._label}{message}[/dim]")

    def upload(self, sent_bytes: int, total_bytes: int) -> None:
        self._start()
        task = self._tasks.get("upload")
        if task is None:
            task = self._tasks["upload"] = self._bytes.add_task(f"{self._label}upload", total=total_bytes)
        self._bytes.update(task, completed=sent_bytes, total=total_bytes)

    def processing(self, status: str, stage: str | None, progress: float) -> None:
        self._start()
        task = self._tasks.get("processing")
        desc = f"{self._label}{status}" + (f" ({stage})" if stage and stage != status else "")
        if task is None:
            task = self._tasks["processing"] = self._pct.add_task(desc, total=1.0)
        self._pct.update(task, completed=max(0.0, min(1.0, progress)), description=desc)

    def download(self, name: str, done_bytes: int, total_bytes: int | None) -> None:
        self._start()
        key = "dl:" + name
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = self._bytes.add_task(f"{self._label}{name}", total=total_bytes)
        self._bytes.update(task, completed=done_bytes, total=total_bytes)

    def close(self) -> None:
        if self._started:
            self._pct.stop()
            self._bytes.stop()
            self._started = False
