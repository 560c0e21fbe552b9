"""The live display of a fleet run: a rich panel on a terminal, plain lines anywhere else.

rich is optional (the ``fleet`` extra): without it, or when the output is a
file or a pipe, the figures come as one line every ``every`` seconds, which a
log or a CI job keeps readable.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from ocpp_sync.fleet.run import Progress

__all__ = ["progress_line", "PlainProgress", "RichProgress", "live_display"]


def progress_line(shown: Progress) -> str:
    return (f"[{shown.seconds:7.1f} s] connected {shown.connected}/{shown.stations}, "
            f"calls {shown.calls} ({shown.calls_per_second:.1f}/s), errors {shown.errors}, "
            f"refused {shown.refused}, reconnects {shown.reconnects}")


class PlainProgress:
    """A line of figures every ``every`` seconds of the run on ``write``."""

    def __init__(self, write: Callable[[str], None], every: float = 5.0) -> None:
        """``write`` takes one line; ``every`` is the number of seconds between lines."""
        self.write = write
        self.every = every
        self._next = 0.0

    def __call__(self, shown: Progress) -> None:
        # By the run's clock, not the wall's: a tick a millisecond early still gets its line.
        if shown.seconds + 0.05 >= self._next:
            self._next = shown.seconds + self.every
            self.write(progress_line(shown))

    def close(self) -> None:
        """Nothing to take down: the lines stay as they were written."""


class RichProgress:
    """A panel redrawn in place on the terminal ``stream`` (rich's Live)."""

    def __init__(self, stream: IO[str]) -> None:
        """``stream`` is the terminal the panel is drawn on."""
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(file=stream), refresh_per_second=4, transient=False)
        self._live.start()

    def __call__(self, shown: Progress) -> None:
        from rich.table import Table

        table = Table(title="ocpp-sync fleet", show_header=False, min_width=48)
        table.add_column(justify="left")
        table.add_column(justify="right")
        for label, value in (("elapsed", f"{shown.seconds:.1f} s"),
                             ("connected", f"{shown.connected} / {shown.stations}"),
                             ("calls", str(shown.calls)),
                             ("calls/s", f"{shown.calls_per_second:.1f}"),
                             ("errors", str(shown.errors)),
                             ("refused", str(shown.refused)),
                             ("reconnects", str(shown.reconnects))):
            table.add_row(label, value)
        self._live.update(table)

    def close(self) -> None:
        self._live.stop()


def live_display(stream: IO[str], write: Callable[[str], None], every: float) -> Any:
    """The rich panel when ``stream`` is a terminal and rich is installed, else plain lines."""
    if stream.isatty():
        try:
            return RichProgress(stream)
        except ImportError:
            pass
    return PlainProgress(write, every)
