"""The protocol core's cost per message, without sockets: instructions (callgrind) and time.

    python benchmarks/bench_codec.py                   # perf_counter medians, every part and kind
    python benchmarks/bench_codec.py --instructions    # instruction counts under callgrind
    python benchmarks/bench_codec.py --kind tx --part roundtrip --loop 2000   # one loop, for a profiler

The workloads are those of bench_roundtrip.py (1.6 Heartbeat, 1.6 BootNotification, 2.0.1
TransactionEvent with 10 sampled values). Parts, per message:

* ``from_payload`` / ``to_payload``: the request and the response, each converted once;
* ``frames``: the request's CALL and the response's CALLRESULT serialised and parsed once each;
* ``roundtrip``: one round trip between two ``RpcState`` objects, a charge point's and a CSMS's,
  as the runtime drives them: the request converted and framed, read by the CSMS, its handler's
  response converted and framed, read by the charge point (both sides' protocol work).

``--instructions`` runs this script once under ``valgrind --tool=callgrind``: it builds and warms
every cell, then loops each N times, an empty loop first, with a marker call in between that
makes callgrind write a profile part per loop; each cell's part less the empty loop's, divided
by N, is the instructions of one iteration, warm-up and start-up excluded, the same whatever else runs on the machine
(PYTHONHASHSEED is fixed so that dict layouts repeat).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from _stacks import TITLES, WORKLOADS

from ocpp_sync import from_payload, to_payload
from ocpp_sync.protocol.frames import Call, CallResult, parse, serialise
from ocpp_sync.protocol.rpc import CS, CSMS, CallAnswered, OutgoingCall, PeerCall, RpcState
from ocpp_sync.protocol.versions import version_module

PARTS = ("from_payload", "to_payload", "frames", "roundtrip")
_NOW = _dt.datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=_dt.timezone.utc)


def _response(kind: str, version: str, action: str) -> Any:
    """The handler's response as bench_roundtrip's CSMS builds it (its own clock's time)."""
    module = version_module(version)
    payload = dict(WORKLOADS[kind][3])
    if "currentTime" in payload:
        payload["currentTime"] = _NOW.isoformat().replace("+00:00", "Z")
    return from_payload(module.RESPONSES[action], payload)


def iteration(kind: str, part: str) -> Callable[[], Any]:
    """One unit of work of ``part`` for ``kind``, ready to call in a loop."""
    version, action, request_payload, _ = WORKLOADS[kind]
    module = version_module(version)
    request_cls, response_cls = module.REQUESTS[action], module.RESPONSES[action]
    request = from_payload(request_cls, request_payload)
    response = _response(kind, version, action)
    response_payload = to_payload(response)
    if part == "from_payload":
        return lambda: (from_payload(request_cls, request_payload),
                        from_payload(response_cls, response_payload))
    if part == "to_payload":
        return lambda: (to_payload(request), to_payload(response))
    if part == "frames":
        call_text = serialise(Call("1234abcd-1", action, request_payload))
        result_text = serialise(CallResult("1234abcd-1", response_payload))
        return lambda: (serialise(Call("1234abcd-1", action, request_payload)),
                        serialise(CallResult("1234abcd-1", response_payload)),
                        parse(call_text, version), parse(result_text, version))
    station = RpcState(version, CS, lambda cls: None, name="cs")
    central = RpcState(version, CSMS, lambda cls: (lambda req: response) if cls is request_cls else None,
                       name="csms")

    def roundtrip() -> Any:
        unique_id, text, cls = station.frame_call(action, to_payload(request))
        call = OutgoingCall(unique_id, action, text, cls)   # type: ignore[arg-type]
        station.submit(call)
        peer = central.receive(text)
        assert isinstance(peer, PeerCall)
        answer = central.answer(peer, peer.handler(peer.request))
        event = station.receive(answer)
        assert isinstance(event, CallAnswered) and event.error is None
        return event.response

    return roundtrip


def run_cells(cells: list[tuple[str, str]], loop: int) -> None:
    """Build and warm every cell, then loop each in turn, calling ``os.getppid`` between them:
    callgrind (``--dump-before=os_getppid``) writes one profile part per cell."""
    works = {(k, p): iteration(k, p) for k in WORKLOADS for p in PARTS}
    works[("empty", "loop")] = lambda: None   # the loop's own cost, subtracted from each cell
    for work in works.values():
        for _ in range(20):   # compiles the converters and warms the caches
            work()
    for cell in cells:
        os.getppid()
        work = works[cell]
        for _ in range(loop):
            work()
    os.getppid()


def median_us(kind: str, part: str, rounds: int = 7, number: int = 2000) -> float:
    work = iteration(kind, part)
    for _ in range(200):
        work()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            work()
        times.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(times)


def instructions(cells: list[tuple[str, str]], loop: int) -> dict[tuple[str, str], float]:
    """Instructions of one iteration of each cell, from one run under callgrind: each cell's
    profile part, less an empty loop's, divided by ``loop``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        spec = [f"{kind}:{part}" for kind, part in cells]
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             "--dump-before=os_getppid", sys.executable, __file__, "--loop", str(loop),
             "--cells", "empty:loop", *spec],
            env=env, capture_output=True, text=True, timeout=900, check=True)
        totals = []
        for number in range(2, len(cells) + 3):   # part 1 is the start-up
            with open(f"{out}.{number}") as part:
                found = re.search(r"^summary: (\d+)", part.read(), re.M)
            if found is None:
                raise SystemExit(f"no total in callgrind part {number}")
            totals.append(int(found.group(1)))
    empty = totals[0]
    return {cell: (total - empty) / loop for cell, total in zip(cells, totals[1:], strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--part", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--loop", type=int, help="run this many iterations of each of --cells (or of "
                        "--kind's first with --part's first), print nothing (for callgrind or a profiler)")
    parser.add_argument("--cells", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--n", type=int, default=300, help="iterations per callgrind run (default 300)")
    args = parser.parse_args()
    if args.loop is not None:
        cells = [tuple(c.split(":")) for c in args.cells] if args.cells else [(args.kind[0], args.part[0])]
        run_cells(cells, args.loop)   # type: ignore[arg-type]
        return
    unit = "instructions per message" if args.instructions else "us per message (median of 7)"
    print(f"| message ({unit}) | " + " | ".join(args.part) + " |")
    print("|---|" + "---|" * len(args.part))
    if args.instructions:
        counts = instructions([(k, p) for k in args.kind for p in args.part], args.n)
    for kind in args.kind:
        if args.instructions:
            row = [f"{counts[(kind, part)]:,.0f}" for part in args.part]
        else:
            row = [f"{median_us(kind, part):.2f}" for part in args.part]
        print(f"| {TITLES[kind]} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
