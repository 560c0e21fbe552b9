"""``ocpp-sync fleet``: run a fleet, show its progress, then report as text, JSON and a plot."""
from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable

from ocpp_sync.fleet.plan import FleetOptions
from ocpp_sync.fleet.plot import save_plot
from ocpp_sync.fleet.progress import live_display
from ocpp_sync.fleet.report import build_report, format_report
from ocpp_sync.fleet.run import run_fleet

__all__ = ["fleet_command", "INTERRUPTED"]

#: The exit status after Ctrl-C, as a shell reports a program that SIGINT ended.
INTERRUPTED = 130


def fleet_command(options: FleetOptions, *, say: Callable[[str], None], json_path: str | None = None,
                  plot_path: str | None = None, progress_every: float = 5.0,
                  log_level: int = logging.ERROR, stop: threading.Event | None = None) -> int:
    """Run the fleet and report; 130 after Ctrl-C, 1 if a station never got connected, else 0.

    ``say`` prints one line of the display or the report; ``json_path`` gets the
    report as JSON (``-``: stdout, the table then goes to stderr); ``plot_path`` a
    PNG of the timeline; plain progress lines come every ``progress_every`` s;
    ``log_level`` is the library's logging level in the workers; setting ``stop``
    (SIGTERM does) ends the run early with its report, like the duration.
    """
    to_stdout = json_path == "-"
    write = (lambda line: print(line, file=sys.stderr, flush=True)) if to_stdout else say
    display = live_display(sys.stderr if to_stdout else sys.stdout, write, progress_every)
    try:
        outcome = run_fleet(options, progress=display, tick=min(1.0, progress_every),
                            log_level=log_level, stop=stop)
    finally:
        display.close()
    report = build_report(outcome)
    write(format_report(report))
    if json_path is not None:
        text = json.dumps(report, indent=2)
        if to_stdout:
            say(text)
        else:
            with open(json_path, "w", encoding="utf-8") as file:
                file.write(text + "\n")
    if plot_path is not None:
        try:
            save_plot(report, plot_path)
        except ImportError:
            sys.stderr.write("--plot needs matplotlib: pip install 'ocpp_sync[fleet]'\n")
            return 1
    if outcome.interrupted:
        return INTERRUPTED
    return 1 if report["connected"] < report["stations"] else 0
