"""Profile our stack under the one-connection workload, with py-spy.

    python benchmarks/profile_roundtrip.py --side client   # profile the ChargePoint process
    python benchmarks/profile_roundtrip.py --side server   # profile the CSMS process

Runs the profiled side in this process under ``py-spy record`` (``pip install py-spy``),
the other side in a child process, for ``--duration`` seconds of sequential calls, then
prints the functions with the largest share of samples: ``self`` is time in the function
itself, ``total`` includes what it calls, as shares of the samples of the thread holding
the GIL (``--no-gil``: of every thread py-spy sees busy); only frames from ocpp_sync and the transports'
libraries are listed. The raw py-spy output (collapsed stacks) goes to the temp dir.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _stacks import WORKLOADS, ClientGroup, ServerProcess

FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^()]*?):(?P<line>\d+)\)$")
INTERESTING = ("ocpp_sync/", "websocket/", "simple_websocket/", "wsproto/", "json/", "attr",
               "threading.py", "concurrent/futures", "queue.py", "selectors.py", "logging/")


def workload(side: str, kind: str, duration: float) -> None:
    """The profiled process: one side in this process, the other in a child."""
    import ocpp_sync
    from ocpp_sync.protocol import codec as _codec

    version, action, payload, _ = WORKLOADS[kind]
    if side == "client":
        server = ServerProcess("ours", max_life=duration + 120)
        try:
            module = _codec.version_module(version)
            message = ocpp_sync.from_payload(module.REQUESTS[action], payload)
            cp = ocpp_sync.ChargePoint("CP_1", f"ws://127.0.0.1:{server.port}/ocpp", version=version)
            cp.connect()
            end = time.monotonic() + duration
            calls = 0
            while time.monotonic() < end:
                cp.send(message)
                calls += 1
            cp.close()
        finally:
            server.stop()
        print(f"{calls / duration:.0f} calls/s under the profiler", flush=True)
        return
    # The CSMS here, the charge point in a child process.
    from _stacks import _serve_ours

    class Pipe:
        """Stands in for the harness pipe: hands over the port, then waits for the end."""

        def __init__(self) -> None:
            self.port = None
            self.ready = threading.Event()
            self.done = threading.Event()

        def send(self, value: object) -> None:
            if self.port is None:
                self.port = value
                self.ready.set()

        def recv(self) -> tuple:
            self.done.wait(duration + 120)
            return ("stop",)

    pipe = Pipe()
    thread = threading.Thread(target=_serve_ours, args=(pipe,), daemon=True)
    thread.start()
    pipe.ready.wait(30)
    group = ClientGroup("ours", pipe.port, "calls", kind, ["CP_1"], 1,
                        {"duration": duration, "warmup": 20}, max_life=duration + 120)
    try:
        group.gather("ready", timeout=60)
        group.go.set()
        report = group.gather("calls", timeout=duration + 60)[0]
        print(f"{report['calls'] / duration:.0f} calls/s under the profiler", flush=True)
    finally:
        group.finish()
        pipe.done.set()
        thread.join(30)


def summarise(path: Path, top: int) -> str:
    """Self and inclusive shares of the sampled frames, from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        if "_find_and_load" in stack:  # start-up imports are not the workload
            continue
        total += n
        frames = []
        for raw in stack.split(";"):
            m = FRAME.match(raw)
            if not m:
                continue
            file = m["file"]
            short = file.split("site-packages/")[-1].split("/lib/python3")[-1].lstrip("0123456789./")
            frames.append(f"{m['func']} ({short})")
        if not frames:
            continue
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    lines = [f"{total} samples", "", "self%  total%  function"]
    for name, n in own.most_common(top):
        if any(k in name for k in INTERESTING):
            lines.append(f"{100 * n / total:5.1f}  {100 * inclusive[name] / total:6.1f}  {name}")
    lines += ["", "inclusive, ocpp_sync only:", "total%  function"]
    shown = 0
    for name, n in inclusive.most_common():
        if "ocpp_sync/" in name and shown < top:
            lines.append(f"{100 * n / total:6.1f}  {name}")
            shown += 1
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", choices=("client", "server"), default="client")
    parser.add_argument("--kind", choices=list(WORKLOADS), default="heartbeat")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--gil", action=argparse.BooleanOptionalAction, default=True,
                        help="sample only the thread holding the GIL (default): where Python "
                             "time goes; --no-gil samples every thread py-spy thinks is busy")
    parser.add_argument("--output", type=Path,
                        help="py-spy's raw output (default: the temp dir; kept out of the tree)")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        workload(args.side, args.kind, args.duration)
        return
    out = args.output or Path(tempfile.gettempdir()) / f"ocpp_sync-profile-{args.side}-{args.kind}.txt"
    command = ["py-spy", "record", "--rate", str(args.rate), "--format", "raw", "--output",
               str(out), "--nonblocking", *(["--gil"] if args.gil else []), "--",
               sys.executable, os.path.abspath(__file__), "--run", "--side", args.side,
               "--kind", args.kind, "--duration", str(args.duration)]
    py_spy = Path(sys.executable).with_name("py-spy")
    if py_spy.exists():
        command[0] = str(py_spy)
    subprocess.run(command, check=True, timeout=args.duration + 300)
    print(summarise(out, args.top))


if __name__ == "__main__":
    main()
