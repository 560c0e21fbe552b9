#!/usr/bin/env python3
"""Cost per message of the metrics counts (ocpp_sync.runtime.metrics), timed with timeit.

Usage: python benchmarks/bench_metrics.py [--quick]
       valgrind --tool=callgrind python benchmarks/bench_metrics.py --loop in 10000   (and 30000)

Times what the runtime adds to each message for its figures, in the thread
that handles it: for a peer's call, the clock read when it is read and the
count (result, latency bucket) once it is answered; for one of ours, the clock
read when it is written and the count once its answer is read; and, for
scale, a CALLERROR answer (whose code is read back from the text) and the
rare path that takes a lock (a timeout). The best of several runs is
reported, in nanoseconds per message, so a busy machine inflates it little.

``--loop KIND N`` only runs N messages of one kind (``in``, ``out``, or ``none``:
the loop and the clock alone) with no timing, for an instruction count that no
other load on the machine changes: the difference between two callgrind runs
(N = 30000 and 10000) over 20000 is the instructions per message, the import
cancelled out.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
from pathlib import Path

from ocpp_sync.metrics import OUT, TIMEOUT
from ocpp_sync.runtime.metrics import ConnectionMetrics, MetricsTotals, clock

RESULTS = Path(__file__).resolve().parent / "results"
ANSWER = '[3,"19223201",{"currentTime":"2026-01-05T08:00:00.000Z"}]'
ERROR = '[4,"19223201","NotSupported","no handler for Reset",{}]'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    parser.add_argument("--loop", nargs=2, metavar=("KIND", "N"),
                        help="run N messages of KIND (in, out, none) untimed, for callgrind")
    args = parser.parse_args()
    number, repeat = (20_000, 3) if args.quick else (200_000, 7)
    metrics = MetricsTotals().attach("2.0.1")
    if args.loop:
        loop(metrics, args.loop[0], int(args.loop[1]))
        return

    def peer_call() -> None:
        received = clock()
        metrics.answered_in("Heartbeat", ANSWER, received)

    def our_call() -> None:
        sent = clock()
        metrics.answer_out("Reset", None, sent)

    def peer_call_error() -> None:
        received = clock()
        metrics.answered_in("Heartbeat", ERROR, received)

    def timeout() -> None:
        metrics.other(OUT, "Reset", TIMEOUT)

    def nothing() -> None:
        pass

    cases = {"a peer's call answered (CALLRESULT)": peer_call,
             "our call answered": our_call,
             "a peer's call answered with a CALLERROR": peer_call_error,
             "a timeout (the locked rare path)": timeout,
             "an empty Python call, for scale": nothing}
    figures = {}
    for name, case in cases.items():
        best = min(timeit.repeat(case, number=number, repeat=repeat)) / number
        figures[name] = round(best * 1e9)
    print("| per message | ns |\n|---|---|")
    for name, ns in figures.items():
        print(f"| {name} | {ns} |")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("metrics-quick.json" if args.quick else "metrics.json")
    out.write_text(json.dumps({"ns_per_message": figures, "python": sys.version,
                               "machine": platform.platform(), "number": number,
                               "repeat": repeat}, indent=2) + "\n")


def loop(metrics: ConnectionMetrics, kind: str, n: int) -> None:
    if kind == "in":
        for _ in range(n):
            received = clock()
            metrics.answered_in("Heartbeat", ANSWER, received)
    elif kind == "out":
        for _ in range(n):
            sent = clock()
            metrics.answer_out("Reset", None, sent)
    else:
        for _ in range(n):
            clock()


if __name__ == "__main__":
    main()
