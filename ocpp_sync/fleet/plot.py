"""``--plot``: calls per second and p99 latency over the run, as a PNG (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_plot"]


def save_plot(report: dict[str, Any], path: str | Path) -> None:
    """Draw the report's timeline into ``path``; ImportError when matplotlib is missing.

    The figure is drawn on an Agg canvas of its own, so no display is needed and
    matplotlib's global backend is left as the caller set it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = report["timeline"]
    seconds = [p["seconds"] for p in points]
    figure = Figure(figsize=(8, 5), tight_layout=True)
    FigureCanvasAgg(figure)
    rate, p99 = figure.subplots(2, 1, sharex=True)
    rate.plot(seconds, [p["calls_per_second"] for p in points], color="tab:blue", label="calls/s")
    connected = rate.twinx()
    connected.plot(seconds, [p["connected"] for p in points], color="tab:gray", linestyle="--",
                   label="connected")
    connected.set_ylabel("stations connected")
    rate.set_ylabel("calls/s")
    rate.set_title(f"{report['stations']} stations, {report['procs']} process(es), seed {report['seed']}")
    p99.plot(seconds, [float("nan") if p["p99_ms"] is None else p["p99_ms"] for p in points],
             color="tab:red")
    p99.set_ylabel("p99 latency (ms)")
    p99.set_xlabel("seconds since the first connect")
    for axes in (rate, connected, p99):
        axes.set_ylim(bottom=0)
    for axes in (rate, p99):
        axes.grid(True, alpha=0.3)
    figure.savefig(str(path), dpi=100)
