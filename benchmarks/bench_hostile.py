"""One hostile station against one CSMS process, while a well-behaved station heartbeats (issue 16).

    python benchmarks/bench_hostile.py                 # 4 MiB, 1 MiB, 512 KiB, 256 KiB limits, ~4 minutes
    python benchmarks/bench_hostile.py --quick         # the default limit only, short phases
    python benchmarks/bench_hostile.py --parse-only    # only the parse+validate cost per size

The CSMS (``ocpp_sync.CSMS``, one process per ``max_message_size``), the good station (an
``ocpp_sync.ChargePoint`` sending sequential 1.6 Heartbeats) and the hostile station (raw
``websocket-client`` sockets) each run in their own process, on loopback. The hostile
station takes turns at:

* ``noread`` -- floods Heartbeat calls and never reads (its receive buffer set to 4 KiB),
  reconnecting whenever the CSMS gives it up;
* ``flood`` -- floods Heartbeat calls as fast as it can, reading the answers in a thread;
* ``big`` -- sends messages just under ``max_message_size`` back to back, the next as soon as
  the previous is answered: 2.0.1 NotifyReports (``report``: many small objects, the costly
  shape) or 1.6 DataTransfers of one long string (``string``).

For each phase: the CSMS's RSS (psutil, sampled every 20 ms) before, at its peak and after
the phase has settled, and the good station's p50/p99 over the calls it started meanwhile.
``parse`` times ``RpcState.receive`` (JSON parse + validation into message objects, the work
done under the CSMS's turn) on one message of each size and shape, in this process.
Writes benchmarks/results/hostile.json.
"""
from __future__ import annotations

import argparse
import array
import json
import socket
import statistics
import threading
import time
from typing import Any

from _stacks import CTX, HOST, _child_setup, machine, machine_line, percentile, save, table

MiB = 1024 * 1024
SIZES = (4 * MiB, 1 * MiB, 512 * 1024, 256 * 1024)
HEARTBEAT = '[2,"{id}","Heartbeat",{{}}]'
_ENTRY = json.dumps({"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
                     "variableAttribute": [{"type": "Actual", "value": "12345"}]},
                    separators=(",", ":"))


def big_message(shape: str, size: int, unique_id: str = "big") -> tuple[str, str]:
    """(version, text) of one call of about ``size`` bytes, never over it."""
    if shape == "string":
        head = f'[2,"{unique_id}","DataTransfer",{{"vendorId":"v","data":"'
        tail = '"}]'
        return "1.6", head + "x" * (size - len(head) - len(tail)) + tail
    head = (f'[2,"{unique_id}","NotifyReport",{{"requestId":1,"generatedAt":"2026-01-01T00:00:00Z",'
            '"seqNo":0,"tbc":false,"reportData":[')
    count = (size - len(head) - 3) // (len(_ENTRY) + 1)
    return "2.0.1", head + ",".join([_ENTRY] * count) + "]}]"


# -- the CSMS process -------------------------------------------------------------------------

def csms_main(conn: Any, max_size: int, history: int, freeze: bool, max_life: float) -> None:
    _child_setup(max_life)
    from datetime import datetime, timezone

    import ocpp_sync
    from ocpp_sync import v16, v201

    options = {"history_size": history} if history else {}
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), max_message_size=max_size, **options)

    @csms.on(v16.HeartbeatRequest)
    def heartbeat(station: Any, request: Any) -> Any:
        return v16.HeartbeatResponse(current_time=datetime.now(timezone.utc))

    @csms.on(v16.DataTransferRequest)
    def data_transfer(station: Any, request: Any) -> Any:
        return v16.DataTransferResponse(status="Accepted")

    @csms.on(v201.NotifyReportRequest)
    def notify_report(station: Any, request: Any) -> Any:
        return v201.NotifyReportResponse()

    csms.start(host=HOST, port=0)
    if freeze:
        import gc

        gc.freeze()   # what is loaded by now is never walked by a full collection again
    conn.send(csms.port)
    conn.recv()
    csms.stop()
    conn.send("stopped")


# -- the good station -------------------------------------------------------------------------

def good_main(port: int, stop: Any, out: Any, gap: float, max_life: float) -> None:
    _child_setup(max_life)
    import ocpp_sync
    from ocpp_sync import v16

    starts, latencies = array.array("d"), array.array("d")
    errors = 0
    cp = ocpp_sync.ChargePoint("GOOD", f"ws://{HOST}:{port}/ocpp", version="1.6", ping_interval=None)
    cp.connect()
    out.put("ready")
    pause = threading.Event()
    while not stop.is_set():
        started = time.monotonic()
        try:
            cp.send(v16.HeartbeatRequest(), timeout=10.0)
        except Exception:
            errors += 1
        starts.append(started)
        latencies.append(time.monotonic() - started)
        pause.wait(gap)
    cp.close()
    out.put({"starts": starts.tolist(), "latencies": latencies.tolist(), "errors": errors})


# -- the hostile station ----------------------------------------------------------------------

def hostile_main(port: int, mode: str, shape: str, size: int, duration: float, out: Any,
                 max_life: float) -> None:
    _child_setup(max_life)
    import websocket

    counts = {"connections": 0, "sent": 0, "answers": 0, "refused_connects": 0}
    end = time.monotonic() + duration
    version = "2.0.1" if mode == "big" and shape == "report" else "1.6"
    text = big_message(shape, size)[1] if mode == "big" else ""
    url = f"ws://{HOST}:{port}/ocpp/HOSTILE"
    while time.monotonic() < end:
        options: dict[str, Any] = {}
        if mode == "noread":
            options["sockopt"] = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
        try:
            ws = websocket.create_connection(url, subprotocols=[f"ocpp{version}"], timeout=10,
                                             **options)
        except Exception:
            counts["refused_connects"] += 1
            threading.Event().wait(0.05)
            continue
        counts["connections"] += 1
        try:
            if mode == "big":
                while time.monotonic() < end:
                    ws.send(text)
                    counts["sent"] += 1
                    ws.recv()
                    counts["answers"] += 1
            else:
                if mode == "flood":
                    threading.Thread(target=_drain, args=(ws, counts), daemon=True,
                                     name="drain").start()
                n = 0
                while time.monotonic() < end:
                    ws.send(HEARTBEAT.format(id=n))
                    n += 1
                    counts["sent"] += 1
        except Exception:
            pass   # given up by the CSMS (1008, 1009, a write timeout): come again
        finally:
            try:
                ws.shutdown()
            except Exception:
                pass
    out.put(counts)


def _drain(ws: Any, counts: dict[str, int]) -> None:
    try:
        while True:
            ws.recv()
            counts["answers"] += 1
    except Exception:
        pass


# -- the parent -------------------------------------------------------------------------------

class RssSampler:
    """The CSMS's resident memory every 20 ms, with the time of each sample."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.samples.append((time.monotonic(), self._proc.memory_info().rss))
            except Exception:
                return

    def window(self, start: float, end: float) -> list[int]:
        return [rss for when, rss in list(self.samples) if start <= when <= end]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


def run_size(size: int, modes: list[str], shape: str, args: argparse.Namespace) -> dict[str, Any]:
    life = 60 + len(modes) * (args.phase + args.settle + 10) + args.warmup
    parent, child = CTX.Pipe()
    csms = CTX.Process(target=csms_main, args=(child, size, args.history, args.gc_freeze, life),
                       name="csms", daemon=True)
    csms.start()
    port = parent.recv() if parent.poll(60) else None
    if port is None:
        raise RuntimeError("the CSMS did not start")
    out, stop = CTX.Queue(), CTX.Event()
    good = CTX.Process(target=good_main, args=(port, stop, out, args.gap, life), name="good",
                       daemon=True)
    good.start()
    if out.get(timeout=60) != "ready":
        raise RuntimeError("the good station did not connect")
    rss = RssSampler(csms.pid)
    threading.Event().wait(args.warmup)
    windows: list[tuple[str, float, float, float, dict[str, Any]]] = []
    base_start = time.monotonic()
    threading.Event().wait(args.phase / 2)
    windows.append(("none", base_start, time.monotonic(), time.monotonic(), {}))
    for mode in modes:
        before = time.monotonic()
        hostile_out = CTX.Queue()
        hostile = CTX.Process(target=hostile_main,
                              args=(port, mode, shape, size, args.phase, hostile_out, life),
                              name=f"hostile-{mode}", daemon=True)
        hostile.start()
        start = time.monotonic()
        counts = hostile_out.get(timeout=args.phase + 60)
        hostile.join(10)
        end = time.monotonic()
        threading.Event().wait(args.settle)
        windows.append((mode, start, end, time.monotonic(), dict(counts, before=before)))
    stop.set()
    samples = out.get(timeout=60)
    good.join(10)
    rss.stop()
    parent.send("stop")
    parent.poll(30)
    csms.join(10)
    for proc in (good, csms):
        if proc.is_alive():
            proc.kill()
    phases = []
    for mode, start, end, settled, counts in windows:
        lat = sorted(latency for started, latency in zip(samples["starts"], samples["latencies"],
                                                          strict=True) if start <= started <= end)
        before = rss.window(counts.pop("before", start) - 1.0, start) or rss.window(start, end)[:1]
        during = rss.window(start, settled)
        phases.append({
            "mode": mode, "shape": shape if mode == "big" else None,
            "rss_before": before[-1] if before else None, "rss_peak": max(during, default=None),
            "rss_after": during[-1] if during else None,
            "good_calls": len(lat), "good_p50_ms": percentile(lat, 50) * 1000,
            "good_p99_ms": percentile(lat, 99) * 1000, "good_max_ms": (lat[-1] if lat else 0) * 1000,
            "hostile": counts})
    return {"max_message_size": size, "good_errors": samples["errors"], "phases": phases}


def parse_costs(repeat: int) -> list[dict[str, Any]]:
    """Parse + validate of one message in RpcState.receive, the work done under the turn."""
    from ocpp_sync.protocol.rpc import CSMS, RpcState

    rows = []
    for shape in ("report", "string"):
        for size in SIZES:
            version, text = big_message(shape, size)
            state = RpcState(version, CSMS, lambda cls: (lambda request: None))
            times, json_times = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                state.receive(text)
                times.append(time.perf_counter() - started)
                state._release("big")
                started = time.perf_counter()
                json.loads(text)
                json_times.append(time.perf_counter() - started)
            rows.append({"shape": shape, "size": size, "bytes": len(text),
                         "receive_ms": statistics.median(times) * 1000,
                         "receive_max_ms": max(times) * 1000,
                         "json_ms": statistics.median(json_times) * 1000})
    return rows


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MiB:.1f}"


def _size(size: int) -> str:
    return f"{size // MiB} MiB" if size >= MiB else f"{size // 1024} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--name", default="hostile", help="results/<name>.json")
    parser.add_argument("--parse-only", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--modes", nargs="*", default=["noread", "flood", "big"],
                        help="hostile phases at the first size (the others run only big)")
    parser.add_argument("--shape", choices=("report", "string"), default="report")
    parser.add_argument("--phase", type=float, default=10.0, help="seconds per hostile phase")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after each phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--gap", type=float, default=0.01, help="seconds between good Heartbeats")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() in the CSMS once started (an application's choice)")
    parser.add_argument("--history", type=int, default=0,
                        help="the CSMS's history_size (0: its default); 1 all but takes it out")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.phase, args.settle = args.sizes[:1], 4.0, 2.0
        if args.name == "hostile":
            args.name = "hostile-quick"   # a smoke run never replaces recorded figures
    info = machine()
    result: dict[str, Any] = {"machine": info, "history_size": args.history or "default",
                              "gc_freeze": args.gc_freeze,
                              "shape": args.shape, "parse": parse_costs(3 if args.quick else 7),
                              "runs": []}
    print(machine_line(info))
    print(table(["shape", "message", "RpcState.receive ms (median)", "max", "json.loads ms"],
                [[r["shape"], _size(r["size"]), f"{r['receive_ms']:.1f}", f"{r['receive_max_ms']:.1f}",
                  f"{r['json_ms']:.1f}"] for r in result["parse"]]))
    if not args.parse_only:
        rows = []
        for number, size in enumerate(args.sizes):
            modes = args.modes if number == 0 else ["big"]
            run = run_size(size, modes, args.shape, args)
            result["runs"].append(run)
            for phase in run["phases"]:
                h = phase["hostile"]
                rows.append([_size(size), phase["mode"], _mib(phase["rss_before"]),
                             _mib(phase["rss_peak"]), _mib(phase["rss_after"]),
                             f"{phase['good_p50_ms']:.1f}", f"{phase['good_p99_ms']:.1f}",
                             f"{phase['good_max_ms']:.0f}", str(phase["good_calls"]),
                             f"{h.get('sent', '-')}/{h.get('connections', '-')}"])
            print(f"max_message_size {_size(size)}: good station errors {run['good_errors']}")
        print(table(["limit", "hostile", "RSS before MiB", "peak", "after", "good p50 ms", "p99",
                     "max", "good calls", "hostile sent/conns"], rows))
    print(f"wrote {save(args.name, result)}")


if __name__ == "__main__":
    main()
