"""Rich console and progress bars shared by every CLI verb."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["console", "err_console", "notice", "progress_bar"]

# soft_wrap: messages and paths are never broken by hard newlines when output goes to a pipe or log
# (tables still fit the terminal width)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def notice(text: str) -> None:
    """A warning for the person at the terminal: one yellow line on stderr, starting with ``!``."""
    err_console.print(f"[yellow]! {escape(text)}[/yellow]", highlight=False)


class _Count(MofNCompleteColumn):
    """``done/total``; for a phase of unknown length, the items counted so far (nothing while none are), and
    ``done`` once a phase that counts nothing has finished (never a ``0/?`` left behind)."""

    def render(self, task: Task) -> Text:
        if task.fields.get("open_ended"):
            n = f"{int(task.completed)}" if task.completed else ""
            return Text("done" if task.finished and not task.fields.get("counted") else n, style="progress.download")
        return super().render(task)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields ``advance(n)``. ``total`` None: a phase of unknown length (a pulsing bar,
    the items counted so far), shown finished when it ends."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        _Count(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total, open_ended=total is None)
        yield lambda n: bar.advance(task, n)
        if total is None:  # finished: a full bar, not a pulsing one left behind
            done = bar.tasks[0].completed
            bar.update(task, total=done or 1, completed=done or 1, counted=done > 0)
