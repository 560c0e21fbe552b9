"""Round trips on one connection: sequential calls from one charge point, for each stack.

    python benchmarks/bench_roundtrip.py            # 5 s per cell, ~1 minute
    python benchmarks/bench_roundtrip.py --quick    # 1.5 s per cell

The CSMS and the charge point run in two processes on loopback. Prints a table of
calls per second per message and stack, and our ratios against the ``ocpp`` package
and the bare transport; writes benchmarks/results/roundtrip.json.
"""
from __future__ import annotations

import argparse

from _stacks import LABELS, STACKS, TITLES, WORKLOADS, check_stacks, machine, machine_line, ratio
from _stacks import run_calls, save, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short cells, for a smoke run")
    parser.add_argument("--duration", type=float, help="seconds per cell (default 5, quick 1.5)")
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), help="subset of " + ", ".join(STACKS))
    parser.add_argument("--kinds", nargs="+", default=list(WORKLOADS), help="subset of " + ", ".join(WORKLOADS))
    args = parser.parse_args()
    duration = args.duration or (1.5 if args.quick else 5.0)
    stacks = check_stacks(args.stacks)
    info = machine()
    results = []
    for kind in args.kinds:
        for stack in stacks:
            cell = run_calls(stack, kind, stations=1, duration=duration, client_procs=1)
            results.append(cell)
            print(f"  {TITLES[kind]:<45} {LABELS[stack]:<16} {cell['rate']:8.0f} calls/s "
                  f"p50 {cell['p50_ms']:.3f} ms  p99 {cell['p99_ms']:.3f} ms"
                  + (f"  ({cell['errors']} errors)" if cell["errors"] else ""), flush=True)
    rate = {(r["kind"], r["stack"]): r["rate"] for r in results}
    headers = ["message"] + [f"{LABELS[s]} calls/s" for s in stacks]
    if "ours" in stacks and "ocpp" in stacks:
        headers.append("ours / ocpp (target >= 3x)")
    if "ours" in stacks and "bare" in stacks:
        headers.append("ours / bare (target >= 0.70)")
    rows = []
    for kind in args.kinds:
        row = [TITLES[kind]] + [f"{rate[(kind, s)]:.0f}" for s in stacks]
        if "ours" in stacks and "ocpp" in stacks:
            row.append(ratio(rate[(kind, "ours")], rate[(kind, "ocpp")]))
        if "ours" in stacks and "bare" in stacks:
            row.append(f"{rate[(kind, 'ours')] / rate[(kind, 'bare')]:.2f}")
        rows.append(row)
    print()
    print(f"Round trips on one connection, {duration:g} s per cell ({machine_line(info)})")
    print()
    print(table(headers, rows))
    path = save("roundtrip", {"machine": info, "duration": duration, "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
