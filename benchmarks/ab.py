"""An interleaved A/B of one benchmark script: a base checkout against this one, round by round.

    git worktree add ../base <commit>
    python benchmarks/ab.py --base ../base --rounds 3 bench_roundtrip.py --stacks ours bare
    python benchmarks/ab.py --base ../base --rounds 3 bench_stations.py --stations 200 --stacks ours ocpp

Each round runs the script once (``--repeat 1``) in the base tree, then once here, each with its
own ``ocpp_sync`` on the path, so a slow spell of the machine hurts both sides alike. A cell's
figure is the median of its rounds; the ratios against the other stacks are taken within each
run. The script's own ``results/<name>.json`` is left as it was; the A/B is written to
``results/ab-<name>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


def run_once(tree: Path, script: str, args: list[str]) -> list[dict[str, Any]]:
    name = {"bench_roundtrip.py": "roundtrip", "bench_stations.py": "stations",
            "bench_hold.py": "hold"}[script]
    result = tree / "benchmarks" / "results" / f"{name}.json"
    saved = result.read_bytes() if result.exists() else None
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        subprocess.run([sys.executable, str(tree / "benchmarks" / script), "--repeat", "1", *args],
                       cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(result.read_text())["results"]  # type: ignore[no-any-return]
    finally:
        if saved is not None:
            result.write_bytes(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the checkout to compare against")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each running both trees once")
    parser.add_argument("script", help="bench_roundtrip.py or bench_stations.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the script")
    options = parser.parse_args()
    trees = {"base": options.base.resolve(), "head": HERE}
    cells: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for round_no in range(1, options.rounds + 1):
        for side, tree in trees.items():
            print(f"round {round_no}: {side} ({tree})", flush=True)
            for cell in run_once(tree, options.script, options.args):
                cells.setdefault((side, cell["stack"], cell["kind"], cell["stations"]), []).append(cell)
    rows = []
    for (side, stack, kind, stations), runs in sorted(cells.items()):
        rows.append({"side": side, "stack": stack, "kind": kind, "stations": stations,
                     "rate": statistics.median(r["rate"] for r in runs),
                     "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                     "rates": [round(r["rate"]) for r in runs],
                     "p99s": [round(r["p99_ms"], 2) for r in runs]})
    by = {(r["side"], r["stack"], r["kind"], r["stations"]): r for r in rows}
    print("\n| side | stack | workload | stations | calls/s (median) | p99 ms | per round |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} | {r['stack']} | {r['kind']} | {r['stations']} | {r['rate']:.0f} | "
              f"{r['p99_ms']:.2f} | {r['rates']} / {r['p99s']} |")
    print("\n| side | workload | stations | ours/bare | ours/ocpp |")
    print("|---|---|---|---|---|")
    for (side, stack, kind, stations), r in sorted(by.items()):
        if stack != "ours":
            continue
        bare, ocpp = by.get((side, "bare", kind, stations)), by.get((side, "ocpp", kind, stations))
        print(f"| {side} | {kind} | {stations} | "
              f"{r['rate'] / bare['rate']:.2f} | " if bare else f"| {side} | {kind} | {stations} | - | ", end="")
        print(f"{r['rate'] / ocpp['rate']:.2f}x |" if ocpp else "- |")
    out = HERE / "benchmarks" / "results" / f"ab-{Path(options.script).stem.removeprefix('bench_')}.json"
    out.write_text(json.dumps({"base": str(trees["base"]), "rounds": options.rounds,
                               "args": options.args, "cells": rows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
