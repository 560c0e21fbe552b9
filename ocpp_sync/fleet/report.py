"""The fleet's report: the outcome of a run as plain data (``--json``) and as a table."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ocpp_sync.fleet.figures import PERCENTILES
from ocpp_sync.fleet.plan import StationPlan
from ocpp_sync.fleet.run import Outcome

__all__ = ["build_report", "format_report", "plan_digest"]

#: The station-level events, in the order the report lists them.
EVENTS = ("connected", "refused", "connect_failed", "booted", "disconnects", "reconnects",
          "queued", "scenarios_passed", "scenarios_failed")


def plan_digest(plans: Sequence[StationPlan]) -> str:
    """A short fingerprint of a plan: two runs with the same digest played the same plan."""
    text = json.dumps([[p.id, p.version, p.connect_at, p.scenario, p.charges, p.phase, p.seed]
                       for p in plans])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def build_report(outcome: Outcome) -> dict[str, Any]:
    """The run as JSON-ready data: what was planned, what happened, and how fast."""
    figures, options = outcome.figures, outcome.options
    actions = {}
    for action in sorted(set(figures.calls) | set(figures.errors_by_action)):
        histogram = figures.latency.get(action)
        entry: dict[str, Any] = {"calls": figures.calls[action], "answered": figures.answered[action],
                                 "errors": figures.errors_by_action[action]}
        for percent in PERCENTILES:
            entry[f"p{percent:g}_ms"] = _ms(histogram.percentile(percent) if histogram else None)
        actions[action] = entry
    total = figures.total_latency()
    calls = sum(figures.calls.values())
    versions: dict[str, int] = {}
    for plan in outcome.plans:
        versions[plan.version] = versions.get(plan.version, 0) + 1
    return {
        "url": options.url,
        "stations": len(outcome.plans),
        "versions": versions,
        "procs": outcome.procs,
        "seed": options.seed,
        "plan": plan_digest(outcome.plans),
        "seconds": round(outcome.seconds, 3),
        "interrupted": outcome.interrupted,
        "peak_connected": outcome.peak_connected,
        **{name: figures.events[name] for name in EVENTS},
        "calls": calls,
        "calls_per_second": round(calls / outcome.seconds, 1) if outcome.seconds > 0 else 0.0,
        "latency": {f"p{percent:g}_ms": _ms(total.percentile(percent)) for percent in PERCENTILES},
        "actions": actions,
        "errors": dict(sorted(figures.errors.items())),
        "cpu_seconds": outcome.cpu,
        "timeline": [{"seconds": p.seconds, "calls_per_second": round(p.calls_per_second, 1),
                      "p99_ms": _ms(p.p99), "connected": p.connected} for p in outcome.timeline],
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [headers] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def format_report(report: dict[str, Any]) -> str:
    """The report as text: the run in a few lines, then calls by action, errors and CPU."""
    ended = "interrupted (Ctrl-C)" if report["interrupted"] else "done"
    versions = ", ".join(f"{count} x {version}" for version, count in sorted(report["versions"].items()))
    lines = [
        f"fleet {ended} after {report['seconds']:.1f} s: {report['stations']} stations ({versions}) "
        f"on {report['procs']} process(es), seed {report['seed']}, plan {report['plan']}",
        f"connects {report['connected']}, refused {report['refused']}, failed "
        f"{report['connect_failed']}, booted {report['booted']}, peak connected "
        f"{report['peak_connected']}, disconnects {report['disconnects']}, reconnects "
        f"{report['reconnects']}, queued while offline {report['queued']}",
        f"calls {report['calls']} ({report['calls_per_second']:.1f}/s), latency p50/p95/p99 "
        + " / ".join(_cell(report["latency"][key]) for key in ("p50_ms", "p95_ms", "p99_ms")) + " ms",
    ]
    if report["scenarios_passed"] or report["scenarios_failed"]:
        lines.append(f"scenarios passed {report['scenarios_passed']}, failed {report['scenarios_failed']}")
    if report["actions"]:
        lines.append("")
        lines += _table(["action", "calls", "answered", "errors", "p50 ms", "p95 ms", "p99 ms"],
                        [[action, a["calls"], a["answered"], a["errors"], a["p50_ms"], a["p95_ms"],
                          a["p99_ms"]] for action, a in report["actions"].items()])
    if report["errors"]:
        lines.append("")
        lines += _table(["error", "count"], [[code, n] for code, n in report["errors"].items()])
    lines.append("")
    lines += _table(["process", "CPU s"], [[name, seconds] for name, seconds in report["cpu_seconds"].items()])
    return "\n".join(lines)
