"""Round trips on one connection: sequential calls from one charge point, for each stack.

    python benchmarks/bench_roundtrip.py            # 3 rounds of 5 s per cell, ~3 minutes
    python benchmarks/bench_roundtrip.py --quick    # 1 round of 1.5 s per cell

The CSMS and the charge point run in two processes on loopback. Cells run interleaved
round by round and each keeps its median round. Prints calls per second per message
and stack, and our ratios against the ``ocpp`` package and the bare transport; writes
benchmarks/results/roundtrip.json.
"""
from __future__ import annotations

import argparse

from _stacks import (
    LABELS,
    STACKS,
    TITLES,
    WORKLOADS,
    check_stacks,
    machine,
    machine_line,
    ratio,
    run_rounds,
    save,
    table,
)


def show(cell: dict) -> None:
    print(f"  round {cell['round'] + 1}  {TITLES[cell['kind']]:<44} {LABELS[cell['stack']]:<15} "
          f"{cell['rate']:7.0f} calls/s  p50 {cell['p50_ms']:.3f} ms  p99 {cell['p99_ms']:.3f} ms"
          + (f"  ({cell['errors']} errors)" if cell["errors"] else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round, for a smoke run")
    parser.add_argument("--duration", type=float, help="seconds per cell (default 5, quick 1.5)")
    parser.add_argument("--repeat", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument("--stacks", nargs="+", default=list(STACKS),
                        help="subset of " + ", ".join(STACKS))
    parser.add_argument("--kinds", nargs="+", default=list(WORKLOADS),
                        help="subset of " + ", ".join(WORKLOADS))
    args = parser.parse_args()
    duration = args.duration or (1.5 if args.quick else 5.0)
    repeat = args.repeat or (1 if args.quick else 3)
    stacks = check_stacks(args.stacks)
    info = machine()
    cells = [(stack, kind, 1) for kind in args.kinds for stack in stacks]
    best = run_rounds(cells, repeat, show, duration=duration, client_procs=1)
    rate = {(stack, kind): best[(stack, kind, 1)]["rate"] for stack, kind, _ in cells}
    headers = ["message"] + [f"{LABELS[s]} calls/s" for s in stacks]
    both_ocpp = "ours" in stacks and "ocpp" in stacks
    both_bare = "ours" in stacks and "bare" in stacks
    if both_ocpp:
        headers.append("ours / ocpp (target >= 3x)")
    if both_bare:
        headers.append("ours / bare (target >= 0.70)")
    rows = []
    for kind in args.kinds:
        row = [TITLES[kind]] + [f"{rate[(s, kind)]:.0f}" for s in stacks]
        if both_ocpp:
            row.append(ratio(rate[("ours", kind)], rate[("ocpp", kind)]))
        if both_bare:
            row.append(f"{rate[('ours', kind)] / rate[('bare', kind)]:.2f}")
        rows.append(row)
    print()
    print(f"Round trips on one connection: median of {repeat} round(s) of {duration:g} s "
          f"per cell ({machine_line(info)})")
    print()
    print(table(headers, rows))
    print()
    print("CPU used during the same cells, in cores (CSMS process / charge point process):")
    print()
    print(table(["message"] + [LABELS[s] for s in stacks],
                [[TITLES[kind]] + [f"{best[(s, kind, 1)]['server_cpu']:.2f} / "
                                   f"{best[(s, kind, 1)]['client_cpu']:.2f}" for s in stacks]
                 for kind in args.kinds]))
    name = "roundtrip" + ("-quick" if args.quick else "")  # a smoke run keeps the figures
    path = save(name, {"machine": info, "duration": duration, "repeat": repeat,
                       "results": list(best.values())})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
