"""Plot aggregate calls per second against the number of stations, one line per stack.

    python benchmarks/plot.py        # reads results/stations.json, writes stations.png

Needs the ``bench`` extra (matplotlib).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = {"ours": "ocpp_sync", "ocpp": "ocpp (asyncio, websockets)", "bare": "bare transport"}
STYLES = {"ours": "o-", "ocpp": "s--", "bare": "^:"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=HERE / "results" / "stations.json")
    parser.add_argument("--output", type=Path, default=HERE / "stations.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(args.input.read_text())
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for stack in ("ours", "ocpp", "bare"):
        points = sorted((r["stations"], r["rate"]) for r in data["results"] if r["stack"] == stack)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], STYLES[stack],
                    label=LABELS[stack])
    ax.set_xscale("log")
    ax.set_xticks(sorted({r["stations"] for r in data["results"]}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("stations (each sending sequential calls)")
    ax.set_ylabel("aggregate calls per second")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    m = data["machine"]
    kind = {"heartbeat": "1.6 Heartbeat", "boot": "1.6 BootNotification",
            "tx": "2.0.1 TransactionEvent"}.get(data.get("kind", "heartbeat"), "")
    ax.set_title(f"{kind} round trips, one CSMS process on loopback\n"
                 f"{m['cpu']}, {m['python']}, {m['date']}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
