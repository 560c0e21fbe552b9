#!/usr/bin/env python3
"""Memory of a CSMS that stations come to and leave: is what they used given back?

    python benchmarks/bench_churn.py             # 1,000 stations in 4 waves, then the big case
    python benchmarks/bench_churn.py --quick     # 100 stations in 2 waves

Churn: one ocpp_sync CSMS process; ``--stations`` stations over ``--client-procs``
processes (websocket-client, one thread per station) come in ``--waves`` waves. In
a wave every station connects, sends 20 calls (a BootNotification, then
Heartbeats, StatusNotifications and MeterValues of about 1.2 KB) and waits for the
others; the CSMS's RSS is read (every station of the wave connected), then they
all leave, and RSS is read again once the CSMS counts none. Nothing calls
gc.collect() in the CSMS; ``--no-gc`` disables the cyclic GC there altogether, so
only reference counting frees.

Big messages: one station sends five 2 MB DataTransfer messages (the CSMS's
max_message_size raised to 8 MiB for it) and RSS is read after each, while it
stays connected, and after it left.

Writes benchmarks/results/churn.json (churn-quick.json with --quick).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from _stacks import CTX, HOST, _child_setup, machine, machine_line, raise_fd_limit, save, table

MIB = 1024 * 1024
BIG = 2_000_000
_READINGS = [{"value": f"{230.0 + n / 10:.1f}", "measurand": "Voltage", "phase": "L1-N",
              "unit": "V", "context": "Sample.Periodic"} for n in range(12)]


def _serve(conn: Any, max_message_size: int, no_gc: bool, malloc_arenas: int | None) -> None:
    """The CSMS process: answers the workload, reports its station count and GC state."""
    import gc

    import ocpp_sync
    from ocpp_sync import v16, v201

    _child_setup(900)
    if no_gc:
        gc.disable()
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), max_message_size=max_message_size,
                          malloc_arenas=malloc_arenas)
    now = lambda: datetime.now(timezone.utc)  # noqa: E731
    csms.on(v16.BootNotificationRequest)(lambda s, r: v16.BootNotificationResponse(
        current_time=now(), interval=300, status="Accepted"))
    csms.on(v16.HeartbeatRequest)(lambda s, r: v16.HeartbeatResponse(current_time=now()))
    csms.on(v16.StatusNotificationRequest)(lambda s, r: v16.StatusNotificationResponse())
    csms.on(v16.MeterValuesRequest)(lambda s, r: v16.MeterValuesResponse())
    csms.on(v16.DataTransferRequest)(lambda s, r: v16.DataTransferResponse(status="Accepted"))
    csms.on(v201.DataTransferRequest)(lambda s, r: v201.DataTransferResponse(status="Accepted"))
    csms.start(HOST, 0, max_connections_per_address=None)
    conn.send(csms.port)
    while True:
        command = conn.recv()
        if command == "count":
            conn.send(len(csms.stations))
        elif command == "gc":
            conn.send({"enabled": gc.isenabled(),
                       "collections": [s["collections"] for s in gc.get_stats()]})
        elif command == "collect":   # a probe after the measurement: what did cycles hold?
            found = gc.collect()
            conn.send(found)
        elif command == "trim":   # a probe: how much of RSS is memory malloc keeps free?
            import ctypes

            conn.send(ctypes.CDLL("libc.so.6").malloc_trim(0))
        elif command == "stop":
            csms.stop()
            conn.send("stopped")
            return


def _calls(big: str) -> list[str]:
    """The 20 calls of one station, or the five big DataTransfers (``big``: string or nested)."""
    if big == "string":   # 1.6: data is a string
        return [json.dumps([2, f"big-{n}", "DataTransfer", {"vendorId": "ACME", "data": "x" * BIG}])
                for n in range(5)]
    if big == "nested":   # 2.0.1: data is any JSON; small objects cost the most once parsed
        item = {"id": 0, "value": "abcdefgh"}
        data = [dict(item, id=n) for n in range(BIG // len(json.dumps(item)))]
        return [json.dumps([2, f"big-{n}", "DataTransfer", {"vendorId": "ACME", "data": data}])
                for n in range(5)]
    calls = [[2, "c0", "BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "X1"}]]
    for n in range(1, 20):
        if n % 3 == 0:
            calls.append([2, f"c{n}", "MeterValues", {"connectorId": 1, "meterValue": [
                {"timestamp": "2026-01-01T12:00:00Z", "sampledValue": _READINGS}]}])
        elif n % 3 == 1:
            calls.append([2, f"c{n}", "Heartbeat", {}])
        else:
            calls.append([2, f"c{n}", "StatusNotification", {
                "connectorId": 1, "errorCode": "NoError", "status": "Charging"}])
    return [json.dumps(call) for call in calls]


def _station(port: int, station_id: str, big: str, connected: threading.Barrier,
             leave: threading.Event, errors: list[str], each: Any = None) -> None:
    import websocket

    try:
        ws = websocket.create_connection(f"ws://{HOST}:{port}/ocpp/{station_id}",
                                         subprotocols=["ocpp2.0.1" if big == "nested" else "ocpp1.6"],
                                         timeout=60)
    except Exception as exc:
        errors.append(f"{station_id}: connect: {exc}")
        connected.abort()
        return
    try:
        for text in _calls(big):
            ws.send(text)
            answer = json.loads(ws.recv())
            if answer[0] != 3:
                errors.append(f"{station_id}: {answer}")
            if each is not None:
                each()
        connected.wait(120)
        leave.wait(120)
    except Exception as exc:
        errors.append(f"{station_id}: {type(exc).__name__}: {exc}")
    finally:
        ws.close()


def _clients(conn: Any, port: int) -> None:
    """A client process: runs one wave of stations per command."""
    _child_setup(900)
    while True:
        command = conn.recv()
        if command[0] == "stop":
            return
        ids = command[1]
        errors: list[str] = []
        connected = threading.Barrier(len(ids) + 1)
        leave = threading.Event()
        threads = [threading.Thread(target=_station, name=f"cp-{i}", daemon=True,
                                    args=(port, i, "", connected, leave, errors)) for i in ids]
        for thread in threads:
            thread.start()
        try:
            connected.wait(180)
        except threading.BrokenBarrierError:
            pass
        conn.send(("connected", errors[:5]))
        conn.recv()  # leave
        leave.set()
        for thread in threads:
            thread.join(60)
        conn.send(("left", errors[:5]))


def _wave(pipes: list[Any], ids: list[str],
          csms: Csms | None = None) -> tuple[float, int, list[str]]:
    """Every station of ``ids`` connects and calls; (RSS, count) read then; all leave."""
    for index, pipe in enumerate(pipes):
        pipe.send(("wave", ids[index::len(pipes)]))
    errors = sum((pipe.recv()[1] for pipe in pipes), [])
    peak, connected = (csms.rss(), csms.ask("count")) if csms is not None else (0.0, 0)
    for pipe in pipes:
        pipe.send("leave")
    errors += sum((pipe.recv()[1] for pipe in pipes), [])
    return peak, connected, errors


class Csms:
    def __init__(self, max_message_size: int, no_gc: bool, malloc_arenas: int | None = None) -> None:
        import psutil

        self.conn, child = CTX.Pipe()
        self.proc = CTX.Process(target=_serve, args=(child, max_message_size, no_gc, malloc_arenas),
                                name="csms", daemon=True)
        self.proc.start()
        child.close()
        self.port = self.ask(None)
        self.ps = psutil.Process(self.proc.pid)

    def ask(self, command: Any, timeout: float = 60) -> Any:
        if command is not None:
            self.conn.send(command)
        if not self.conn.poll(timeout):
            raise TimeoutError(f"the CSMS did not answer {command!r}")
        return self.conn.recv()

    def rss(self) -> float:
        return self.ps.memory_info().rss / MIB

    def wait_empty(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.ask("count") and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        try:
            self.ask("stop", timeout=30)
        except (TimeoutError, OSError, EOFError):
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def churn(args: argparse.Namespace) -> dict[str, Any]:
    csms = Csms(4 * MIB, args.no_gc, args.malloc_arenas)
    pipes, procs = [], []
    try:
        for n in range(args.client_procs):
            ours, theirs = CTX.Pipe()
            proc = CTX.Process(target=_clients, args=(theirs, csms.port), name=f"cps-{n}", daemon=True)
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        if args.warmup:
            # The first station of a kind builds what every later one shares (converters,
            # the first threads' stacks and malloc arenas): a CSMS pays it once, not per station.
            _wave(pipes, [f"WARMUP_{n}" for n in range(args.warmup)])
            csms.wait_empty()
        time.sleep(1.0)   # let the CSMS process settle before the first reading
        start = csms.rss()
        print(f"churn: CSMS RSS at start {start:.1f} MiB (gc {csms.ask('gc')})", flush=True)
        per_wave = args.stations // args.waves
        waves = []
        for wave in range(args.waves):
            ids = [f"CHURN_{wave}_{n}" for n in range(per_wave)]
            began = time.monotonic()
            peak, connected, errors = _wave(pipes, ids, csms)
            csms.wait_empty()
            time.sleep(args.settle)
            after = csms.rss()
            waves.append({"stations": per_wave, "connected": connected, "rss_connected": peak,
                          "rss_after": after, "seconds": time.monotonic() - began,
                          "errors": errors[:5]})
            print(f"  wave {wave + 1}: {connected} connected, RSS {peak:.1f} MiB while connected, "
                  f"{after:.1f} MiB after they left ({time.monotonic() - began:.1f} s)"
                  + (f"; errors: {errors[:3]}" if errors else ""), flush=True)
        end = csms.rss()
        gc_state = csms.ask("gc")
        print(f"  end: {end:.1f} MiB ({(end / start - 1) * 100:+.1f}% of the start); gc {gc_state}")
        collected = csms.ask("collect")
        probe = csms.rss()
        csms.ask("trim")
        trimmed = csms.rss()
        print(f"  probes after the measurement: gc.collect() found {collected} objects "
              f"(RSS then {probe:.1f} MiB); after malloc_trim(0) {trimmed:.1f} MiB")
        return {"stations": args.stations, "waves": waves, "calls_per_station": 20,
                "warmup_stations": args.warmup, "no_gc": args.no_gc, "malloc_arenas": args.malloc_arenas,
                "rss_start": start,
                "rss_end": end, "growth": end / start - 1, "gc": gc_state,
                "probe_collected": collected, "probe_rss": probe, "probe_trimmed_rss": trimmed}
    finally:
        for pipe in pipes:
            try:
                pipe.send(("stop",))
            except OSError:
                pass
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        csms.stop()


def big(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    csms = Csms(8 * MIB, args.no_gc, args.malloc_arenas)
    try:
        time.sleep(1.0)
        start = csms.rss()
        readings: list[float] = []
        connected, leave = threading.Barrier(2), threading.Event()
        errors: list[str] = []
        thread = threading.Thread(target=_station, args=(
            csms.port, "BIG_1", kind, connected, leave, errors, lambda: readings.append(csms.rss())),
            name="big", daemon=True)
        thread.start()
        connected.wait(120)
        held = csms.rss()
        leave.set()
        thread.join(60)
        csms.wait_empty()
        time.sleep(args.settle)
        after = csms.rss()
        print(f"big ({kind}): RSS {start:.1f} MiB at start, after each 2 MB message "
              f"{', '.join(f'{r:.1f}' for r in readings)}; {held:.1f} MiB while connected "
              f"(+{held - start:.1f} MiB), {after:.1f} MiB after it left"
              + (f"; errors: {errors}" if errors else ""))
        return {"kind": kind, "messages": 5, "bytes": BIG, "rss_start": start, "rss_each": readings,
                "rss_connected": held, "growth_connected": held - start, "rss_after": after,
                "errors": errors}
    finally:
        csms.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=0,
                        help="stations of one wave before the start reading (default: none)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds after the CSMS counts no station before reading RSS")
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic GC in the CSMS")
    parser.add_argument("--malloc-arenas", type=int, default=None,
                        help="the CSMS's malloc_arenas option (default: the allocator's own)")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--name", default="churn", help="results/<name>.json")
    args = parser.parse_args()
    if args.quick:
        args.stations, args.waves, args.settle = 100, 2, 1.0
    raise_fd_limit()
    info = machine()
    spec = importlib.util.find_spec("ocpp_sync")
    info["ocpp_sync_path"] = str(spec.origin if spec else "-")   # what was measured (PYTHONPATH)
    print(machine_line(info), "from", info["ocpp_sync_path"])
    result: dict[str, Any] = {"machine": info, "churn": churn(args)}
    if not args.skip_big:
        result["big"] = [big(args, "string"), big(args, "nested")]
    c = result["churn"]
    rows = [[str(n + 1), str(w["connected"]), f"{w['rss_connected']:.1f}", f"{w['rss_after']:.1f}"]
            for n, w in enumerate(c["waves"])]
    print(table(["wave", "connected", "RSS connected (MiB)", "RSS after (MiB)"], rows))
    print(f"start {c['rss_start']:.1f} MiB, end {c['rss_end']:.1f} MiB ({c['growth'] * 100:+.1f}%)")
    path = save(args.name + ("-quick" if args.quick else ""), result)
    print(f"wrote {path}")
    sys.exit(0)


if __name__ == "__main__":
    main()
