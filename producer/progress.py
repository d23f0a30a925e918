"""The progress bar of `submit --wait`, `run` and Client.wait: done / total, rate, ETA."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from newsflow.record import BatchProgress


def progress_bar(console: Console) -> tuple[Progress, Callable[[BatchProgress], None]]:
    """A bar (drawn only when `console` is a terminal) and the callback that moves it."""
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f}/s"), TimeRemainingColumn(),
        TextColumn("{task.fields[failed]}"),
        console=console, disable=not console.is_terminal,
    )  # fmt: skip
    task = bar.add_task("processing", total=None, rate=0.0, failed="")
    started = time.monotonic()

    def update(progress: BatchProgress) -> None:
        finished = progress.done + progress.failed
        rate = finished / max(time.monotonic() - started, 1e-6)
        failed = f"[red]{progress.failed} failed" if progress.failed else ""
        bar.update(task, completed=finished, total=progress.total, rate=rate, failed=failed)

    return bar, update
