"""Shared harness: the three stacks, their CSMS processes and their charge point processes.

Stacks:

* ``ours``  -- ocpp_sync on both sides (ChargePoint, CSMS);
* ``ocpp``  -- the ``ocpp`` package from PyPI on ``websockets`` (asyncio), validation on,
  websockets' defaults otherwise, as its documentation shows it;
* ``bare``  -- websocket-client sending a pre-serialised CALL to a simple-websocket server
  (stdlib socket + ``simple_websocket.Server``) that answers a fixed CALLRESULT: no OCPP at
  all, the ceiling of our stack.

Every CSMS and every group of charge points runs in its own process (``spawn``), on loopback.
Every child process has a watchdog that ends it after ``max_life`` seconds whatever happens,
and the parent kills what is left, so a benchmark always stops by itself.
"""
from __future__ import annotations

import array
import asyncio
import json
import logging
import multiprocessing as mp
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STACKS = ("ours", "ocpp", "bare")
LABELS = {"ours": "ocpp_sync", "ocpp": "ocpp (asyncio)", "bare": "bare transport"}
HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CTX = mp.get_context("spawn")

# -- the workload messages, as wire payloads -----------------------------------------------

_MEASURANDS = [
    ("Energy.Active.Import.Register", None, 12345.6),
    ("Power.Active.Import", None, 7200.0),
    ("Current.Import", "L1", 31.5),
    ("Current.Import", "L2", 31.2),
    ("Current.Import", "L3", 31.9),
    ("Voltage", "L1-N", 230.1),
    ("Voltage", "L2-N", 229.8),
    ("Voltage", "L3-N", 231.0),
    ("Frequency", None, 50.0),
    ("SoC", None, 57.0),
]

_TX_PAYLOAD: dict[str, Any] = {
    "eventType": "Updated",
    "timestamp": "2026-01-01T12:00:00Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 7,
    "transactionInfo": {"transactionId": "tx-0000001", "chargingState": "Charging"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [{
        "timestamp": "2026-01-01T12:00:00Z",
        "sampledValue": [
            dict({"value": value, "measurand": measurand, "context": "Sample.Periodic",
                  "location": "Outlet"}, **({"phase": phase} if phase else {}))
            for measurand, phase, value in _MEASURANDS
        ],
    }],
}

# kind -> (OCPP version, action, request payload, response payload)
WORKLOADS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "heartbeat": ("1.6", "Heartbeat", {}, {"currentTime": "2026-01-01T12:00:00Z"}),
    "boot": ("1.6", "BootNotification",
             {"chargePointVendor": "ACME", "chargePointModel": "X1",
              "chargePointSerialNumber": "SN-000001", "firmwareVersion": "1.2.3"},
             {"currentTime": "2026-01-01T12:00:00Z", "interval": 300, "status": "Accepted"}),
    "tx": ("2.0.1", "TransactionEvent", _TX_PAYLOAD, {}),
}
TITLES = {"heartbeat": "1.6 Heartbeat", "boot": "1.6 BootNotification",
          "tx": "2.0.1 TransactionEvent (10 sampled values)"}


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def bare_call(kind: str, unique_id: str = "b-1") -> str:
    _, action, payload, _ = WORKLOADS[kind]
    return _compact([2, unique_id, action, payload])


def bare_result(kind: str, unique_id: str = "b-1") -> str:
    return _compact([3, unique_id, WORKLOADS[kind][3]])


# -- process plumbing ------------------------------------------------------------------------

class _FewLogs(logging.Handler):
    """Show a child's first few warnings, then only say that more were dropped."""

    def __init__(self, limit: int = 5) -> None:
        super().__init__(logging.WARNING)
        self.limit, self.seen = limit, 0

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += 1
        if self.seen <= self.limit:
            sys.stderr.write(f"[{mp.current_process().name}] {record.name}: {record.getMessage()}\n")
        elif self.seen == self.limit + 1:
            sys.stderr.write(f"[{mp.current_process().name}] (further warnings not shown)\n")


def _child_setup(max_life: float) -> None:
    _watchdog(max_life)
    raise_fd_limit()
    root = logging.getLogger()
    root.addHandler(_FewLogs())
    root.setLevel(logging.WARNING)


def _watchdog(max_life: float) -> None:
    """End this process after ``max_life`` seconds, however stuck it is."""
    timer = threading.Timer(max_life, os._exit, (3,))
    timer.daemon = True
    timer.start()


def raise_fd_limit(wanted: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ServerProcess:
    """A CSMS of one stack in its own process, driven over a pipe."""

    def __init__(self, stack: str, max_life: float = 600.0, stack_size: int = 0,
                 switch_interval: float = 0.0) -> None:
        self.stack = stack
        self._conn, child = CTX.Pipe()
        self.proc = CTX.Process(target=server_main,
                                args=(stack, child, max_life, stack_size, switch_interval),
                                name=f"csms-{stack}", daemon=True)
        self.proc.start()
        child.close()
        self.port = self._reply(60.0)

    def _reply(self, timeout: float) -> Any:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"the {self.stack} CSMS did not answer within {timeout} s")
        reply = self._conn.recv()
        if isinstance(reply, tuple) and reply and reply[0] == "error":
            raise RuntimeError(f"the {self.stack} CSMS failed: {reply[1]}")
        return reply

    def request(self, *command: Any, timeout: float = 60.0) -> Any:
        self._conn.send(command)
        return self._reply(timeout)

    def cpu_seconds(self) -> float:
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def usage(self) -> tuple[int, int]:
        """(resident bytes, threads) of the CSMS process."""
        import psutil

        proc = psutil.Process(self.proc.pid)
        return proc.memory_info().rss, proc.num_threads()

    def stop(self, timeout: float = 30.0) -> None:
        try:
            if self.proc.is_alive():
                self.request("stop", timeout=timeout)
        except (TimeoutError, OSError, EOFError, RuntimeError):
            pass
        self.proc.join(5.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5.0)
        self._conn.close()


class ClientGroup:
    """Charge point processes of one stack, sharing ``stations`` between them."""

    def __init__(self, stack: str, port: int, mode: str, kind: str, station_ids: list[str],
                 procs: int, params: dict[str, Any], max_life: float = 600.0) -> None:
        procs = max(1, min(procs, len(station_ids)))
        self.go = CTX.Event()
        self.stop_event = CTX.Event()
        self.queue: Any = CTX.Queue()
        self.procs = []
        for index in range(procs):
            share = station_ids[index::procs]
            proc = CTX.Process(target=client_main,
                               args=(stack, port, mode, kind, share, index, self.go,
                                     self.stop_event, self.queue, params, max_life),
                               name=f"cps-{stack}-{index}", daemon=True)
            proc.start()
            self.procs.append(proc)

    def gather(self, tag: str, timeout: float) -> list[dict[str, Any]]:
        """One message tagged ``tag`` from every process (raises if one reports an error)."""
        deadline = time.monotonic() + timeout
        got: list[dict[str, Any]] = []
        while len(got) < len(self.procs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(got)}/{len(self.procs)} client processes sent {tag!r}")
            try:
                message = self.queue.get(timeout=min(remaining, 1.0))
            except Exception:
                if not all(p.is_alive() for p in self.procs):
                    dead = [p.name for p in self.procs if not p.is_alive()]
                    if len(got) + len(dead) < len(self.procs) or not dead:
                        continue
                    raise RuntimeError(f"client processes ended early: {dead}") from None
                continue
            if message.get("tag") == "error":
                raise RuntimeError(f"client process {message['index']}: {message['error']}")
            if message.get("tag") == tag:
                got.append(message)
        return got

    def finish(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        self.queue.close()


# -- CSMS processes ------------------------------------------------------------------------

def server_main(stack: str, conn: Any, max_life: float, stack_size: int,
                switch_interval: float) -> None:
    _child_setup(max_life)
    if stack_size:
        threading.stack_size(stack_size)
    if switch_interval:
        sys.setswitchinterval(switch_interval)
    try:
        {"ours": _serve_ours, "ocpp": _serve_ocpp, "bare": _serve_bare}[stack](conn)
    except BaseException as exc:  # report, then die: the parent is waiting on the pipe
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _fanout_futures(futures: list[Any], started: float, timeout: float) -> dict[str, Any]:
    from concurrent.futures import wait

    done, _ = wait(futures, timeout=timeout)
    elapsed = time.perf_counter() - started
    answered = sum(1 for f in done if f.exception() is None)
    return {"sent": len(futures), "answered": answered, "seconds": elapsed}


def _serve_ours(conn: Any) -> None:
    import ocpp_sync
    from ocpp_sync import v16, v201

    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"))

    @csms.on(v16.HeartbeatRequest)
    def heartbeat(station: Any, request: Any) -> Any:
        return v16.HeartbeatResponse(current_time=datetime.now(timezone.utc))

    @csms.on(v16.BootNotificationRequest)
    def boot(station: Any, request: Any) -> Any:
        return v16.BootNotificationResponse(current_time=datetime.now(timezone.utc), interval=300,
                                            status=v16.RegistrationStatus.ACCEPTED)

    @csms.on(v201.TransactionEventRequest)
    def transaction(station: Any, request: Any) -> Any:
        return v201.TransactionEventResponse()

    # Every simulated station connects from 127.0.0.1: lift the per-address cap meant for the wild.
    csms.start(host=HOST, port=0, max_connections_per_address=None)
    conn.send(csms.port)
    while True:
        command = conn.recv()
        if command[0] == "count":
            conn.send(len(csms.stations))
        elif command[0] == "fanout":
            stations = list(csms.stations.values())
            started = time.perf_counter()
            futures = [s.send_async(v16.ClearCacheRequest()) for s in stations]
            conn.send(_fanout_futures(futures, started, command[1]))
        elif command[0] == "stop":
            csms.stop()
            conn.send("stopped")
            return


def _serve_ocpp(conn: Any) -> None:
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint as CP16
    from ocpp.v16 import call as call16
    from ocpp.v16 import call_result as result16
    from ocpp.v201 import ChargePoint as CP201
    from ocpp.v201 import call_result as result201
    from websockets.asyncio.server import serve

    def now() -> str:
        return datetime.now(timezone.utc).isoformat()

    class Station16(CP16):
        @on("Heartbeat")
        def on_heartbeat(self, **kwargs: Any) -> Any:
            return result16.Heartbeat(current_time=now())

        @on("BootNotification")
        def on_boot(self, **kwargs: Any) -> Any:
            return result16.BootNotification(current_time=now(), interval=300, status="Accepted")

    class Station201(CP201):
        @on("TransactionEvent")
        def on_transaction_event(self, **kwargs: Any) -> Any:
            return result201.TransactionEvent()

    stations: dict[str, Any] = {}

    async def handler(ws: Any) -> None:
        station_id = ws.request.path.rstrip("/").rsplit("/", 1)[-1]
        cls = Station201 if ws.subprotocol == "ocpp2.0.1" else Station16
        cp = cls(station_id, ws)
        stations[station_id] = cp
        try:
            await cp.start()
        except Exception:  # the connection closed
            pass
        finally:
            if stations.get(station_id) is cp:
                del stations[station_id]

    async def fanout(timeout: float) -> dict[str, Any]:
        cps = list(stations.values())
        started = time.perf_counter()
        results = await asyncio.wait_for(
            asyncio.gather(*(cp.call(call16.ClearCache()) for cp in cps), return_exceptions=True),
            timeout)
        elapsed = time.perf_counter() - started
        answered = sum(1 for r in results if r is not None and not isinstance(r, BaseException))
        return {"sent": len(cps), "answered": answered, "seconds": elapsed}

    async def count() -> int:
        return len(stations)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        async with serve(handler, HOST, 0, subprotocols=["ocpp2.0.1", "ocpp1.6"]) as server:
            port = next(iter(server.sockets)).getsockname()[1]

            def control() -> None:
                conn.send(port)
                while True:
                    command = conn.recv()
                    if command[0] == "count":
                        conn.send(asyncio.run_coroutine_threadsafe(count(), loop).result())
                    elif command[0] == "fanout":
                        conn.send(asyncio.run_coroutine_threadsafe(fanout(command[1]), loop)
                                  .result())
                    elif command[0] == "stop":
                        loop.call_soon_threadsafe(stop.set_result, None)
                        return

            thread = threading.Thread(target=control, name="bench-control", daemon=True)
            thread.start()
            await stop
            server.close()
        conn.send("stopped")

    asyncio.run(main())


def _read_http_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > 65536:
            raise ConnectionError("no complete HTTP request")
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


def _serve_bare(conn: Any) -> None:
    """A minimal websocket server: stdlib socket + simple_websocket.Server, no OCPP."""
    import simple_websocket

    results = {kind: bare_result(kind) for kind in WORKLOADS}
    fan_result_prefix = '[3,"f-'
    listener = socket.create_server((HOST, 0), backlog=4096)
    live: dict[str, tuple[Any, threading.Lock]] = {}
    live_lock = threading.Lock()
    fan = {"answered": 0, "expected": -1}
    fan_done = threading.Event()

    def serve_one(sock: socket.socket) -> None:
        try:
            head = _read_http_head(sock).decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1]
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
            environ = dict(headers, REQUEST_METHOD="GET", PATH_INFO=path, **{"werkzeug.socket": sock})
            offered = [p.strip() for p in headers.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "").split(",")]
            ws = simple_websocket.Server.accept(environ, subprotocols=offered[:1],
                                                receive_bytes=65536)
        except Exception:
            sock.close()
            return
        parts = path.strip("/").split("/")
        kind, station_id = parts[-2], parts[-1]
        answer = results.get(kind, results["heartbeat"])
        write_lock = threading.Lock()
        with live_lock:
            live[station_id] = (ws, write_lock)
        try:
            while True:
                text = ws.receive()
                if text is None:
                    break
                if text.startswith(fan_result_prefix):
                    with live_lock:
                        fan["answered"] += 1
                        if fan["answered"] == fan["expected"]:
                            fan_done.set()
                    continue
                with write_lock:
                    ws.send(answer)
        except simple_websocket.ConnectionClosed:
            pass
        finally:
            with live_lock:
                if live.get(station_id, (None,))[0] is ws:
                    del live[station_id]

    def accept_loop() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(sock,), daemon=True).start()

    threading.Thread(target=accept_loop, name="bare-accept", daemon=True).start()
    conn.send(listener.getsockname()[1])
    while True:
        command = conn.recv()
        if command[0] == "count":
            with live_lock:
                conn.send(len(live))
        elif command[0] == "fanout":
            with live_lock:
                targets = list(live.items())
                fan["answered"], fan["expected"] = 0, len(targets)
                fan_done.clear()
            started = time.perf_counter()
            for station_id, (ws, write_lock) in targets:
                with write_lock:
                    ws.send(_compact([2, f"f-{station_id}", "ClearCache", {}]))
            fan_done.wait(command[1])
            elapsed = time.perf_counter() - started
            conn.send({"sent": len(targets), "answered": fan["answered"], "seconds": elapsed})
        elif command[0] == "stop":
            listener.close()
            with live_lock:
                targets = list(live.values())
            for ws, _ in targets:
                try:
                    ws.close()
                except Exception:
                    pass
            conn.send("stopped")
            return


# -- charge point processes ----------------------------------------------------------------

def client_main(stack: str, port: int, mode: str, kind: str, station_ids: list[str],
                index: int, go: Any, stop: Any, queue: Any, params: dict[str, Any],
                max_life: float) -> None:
    """``mode``: "calls" (sequential calls per station while the clock runs) or "hold"
    (connect, heartbeat, answer the CSMS's ClearCache, until told to stop)."""
    _child_setup(max_life)
    if params.get("stack_size"):
        threading.stack_size(params["stack_size"])
    try:
        runner = {"ours": _ClientsOurs, "ocpp": _ClientsOcpp, "bare": _ClientsBare}[stack]
        runner(port, mode, kind, station_ids, index, go, stop, queue, params).run()
    except BaseException as exc:
        queue.put({"tag": "error", "index": index, "error": f"{type(exc).__name__}: {exc}"})
        raise
    # Skip interpreter shutdown: with hundreds of connections it only adds noise and time.
    queue.close()
    queue.join_thread()
    os._exit(0)


class _Clients:
    def __init__(self, port: int, mode: str, kind: str, station_ids: list[str], index: int,
                 go: Any, stop: Any, queue: Any, params: dict[str, Any]) -> None:
        self.port, self.mode, self.kind = port, mode, kind
        self.station_ids, self.index = station_ids, index
        self.go, self.stop, self.queue, self.params = go, stop, queue, params
        self.version, self.action, self.payload, _ = WORKLOADS[kind]

    def put(self, tag: str, **values: Any) -> None:
        self.queue.put(dict(values, tag=tag, index=self.index))

    def wait_go(self) -> None:
        if not self.go.wait(self.params.get("go_timeout", 120.0)):
            raise TimeoutError("never told to go")
        self.cpu_at_go = time.process_time()

    def report_calls(self, counts: list[int], errors: int, latencies: list[array.array],
                     started: float, ended: float) -> None:
        merged = array.array("d")
        for part in latencies:
            merged.extend(part)
        self.put("calls", calls=sum(counts), errors=errors, started=started, ended=ended,
                 latencies=merged.tobytes(), cpu=time.process_time() - self.cpu_at_go)


class _ClientsOurs(_Clients):
    def run(self) -> None:
        import ocpp_sync
        from ocpp_sync.protocol import codec as _codec

        module = _codec.version_module(self.version)
        message = ocpp_sync.from_payload(module.REQUESTS[self.action], self.payload)
        url = f"ws://{HOST}:{self.port}/ocpp"
        if self.mode == "calls":
            cps = [ocpp_sync.ChargePoint(i, url, version=self.version) for i in self.station_ids]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda cp: cp.connect(), cps))
            for cp in cps:
                for _ in range(self.params.get("warmup", 20)):
                    cp.send(message)
            self.put("ready")
            self.wait_go()
            duration = self.params["duration"]
            started = time.monotonic()
            end = started + duration
            counts = [0] * len(cps)
            lats = [array.array("d") for _ in cps]
            errors = [0]

            def work(i: int) -> None:
                cp, lat, clock = cps[i], lats[i], time.perf_counter
                n = 0
                while time.monotonic() < end:
                    t0 = clock()
                    try:
                        cp.send(message)
                    except Exception:
                        errors[0] += 1
                        continue
                    lat.append(clock() - t0)
                    n += 1
                counts[i] = n

            threads = [threading.Thread(target=work, args=(i,), name=f"bench-{i}")
                       for i in range(len(cps))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(duration + 60)
            ended = time.monotonic()
            self.report_calls(counts, errors[0], lats, started, ended)
            self._close_all(cps)
        else:
            self._hold(ocpp_sync, url)

    def _hold(self, ocpp_sync: Any, url: str) -> None:
        from ocpp_sync import v16

        heartbeat = v16.HeartbeatRequest()
        cps = []
        for station_id in self.station_ids:
            cp = ocpp_sync.ChargePoint(station_id, url, version="1.6")
            cp.on(v16.ClearCacheRequest)(
                lambda request: v16.ClearCacheResponse(status=v16.ClearCacheStatus.ACCEPTED))
            cps.append(cp)
        self.put("ready")
        self.wait_go()
        failures = 0
        with ThreadPoolExecutor(self.params.get("connect_concurrency", 8)) as pool:
            for exc in pool.map(_try, [cp.connect for cp in cps]):
                failures += exc is not None
        self.put("connected", at=time.monotonic(), failures=failures)
        interval = self.params["heartbeat_interval"]
        beats = errors = 0
        while not self.stop.is_set():
            spacing = interval / max(1, len(cps))
            for cp in cps:
                if self.stop.wait(spacing):
                    break
                try:
                    cp.send_async(heartbeat)
                    beats += 1
                except Exception:
                    errors += 1
        self.put("held", heartbeats=beats, errors=errors)
        self._close_all(cps)

    @staticmethod
    def _close_all(cps: list[Any]) -> None:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda cp: cp.close(), cps))


def _try(fn: Any) -> BaseException | None:
    try:
        fn()
    except Exception as exc:
        return exc
    return None


class _ClientsOcpp(_Clients):
    def run(self) -> None:
        asyncio.run(self.main())

    async def main(self) -> None:
        from ocpp.charge_point import camel_to_snake_case
        from ocpp.routing import on
        from ocpp.v16 import ChargePoint as CP16
        from ocpp.v16 import call_result as result16
        from ocpp.v201 import ChargePoint as CP201
        from websockets.asyncio.client import connect

        class Station16(CP16):
            @on("ClearCache")
            def on_clear_cache(self, **kwargs: Any) -> Any:
                return result16.ClearCache(status="Accepted")

        version = "1.6" if self.mode == "hold" else self.version
        cls, calls = (Station16, "ocpp.v16.call") if version == "1.6" else (CP201, "ocpp.v201.call")
        import importlib

        call_module = importlib.import_module(calls)
        action = "Heartbeat" if self.mode == "hold" else self.action
        payload = {} if self.mode == "hold" else self.payload

        def make() -> Any:
            return getattr(call_module, action)(**camel_to_snake_case(payload))

        url = f"ws://{HOST}:{self.port}/ocpp"
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task] = []
        limit = asyncio.Semaphore(self.params.get("connect_concurrency", 8))

        async def open_one(station_id: str) -> Any:
            async with limit:
                ws = await connect(f"{url}/{station_id}", subprotocols=[f"ocpp{version}"],
                                   open_timeout=30)
            cp = cls(station_id, ws)
            tasks.append(asyncio.ensure_future(cp.start()))
            return cp

        if self.mode == "hold":
            self.put("ready")
            await loop.run_in_executor(None, self.wait_go)
            results = await asyncio.gather(*(open_one(i) for i in self.station_ids),
                                           return_exceptions=True)
            cps = [r for r in results if not isinstance(r, BaseException)]
            self.put("connected", at=time.monotonic(), failures=len(results) - len(cps))
            interval = self.params["heartbeat_interval"]
            counter = {"beats": 0, "errors": 0}

            async def beat(cp: Any, offset: float) -> None:
                await asyncio.sleep(offset)
                while True:
                    try:
                        await cp.call(make())
                        counter["beats"] += 1
                    except Exception:
                        counter["errors"] += 1
                    await asyncio.sleep(interval)

            beaters = [asyncio.ensure_future(beat(cp, interval * i / max(1, len(cps))))
                       for i, cp in enumerate(cps)]
            await loop.run_in_executor(None, self.stop.wait, self.params.get("hold_timeout", 600))
            self.put("held", heartbeats=counter["beats"], errors=counter["errors"])
            for task in beaters:
                task.cancel()
            await self._close_all(cps, tasks)
            return

        cps = [await open_one(i) for i in self.station_ids]
        message = make()
        for cp in cps:
            for _ in range(self.params.get("warmup", 20)):
                await cp.call(message)
        self.put("ready")
        await loop.run_in_executor(None, self.wait_go)
        duration = self.params["duration"]
        started = time.monotonic()
        end = started + duration
        lats = [array.array("d") for _ in cps]
        counts = [0] * len(cps)
        errors = [0]

        async def work(i: int) -> None:
            cp, lat, clock = cps[i], lats[i], time.perf_counter
            n = 0
            while time.monotonic() < end:
                t0 = clock()
                try:
                    if await cp.call(make()) is None:  # a CALLERROR, suppressed by the package
                        errors[0] += 1
                        continue
                except Exception:
                    errors[0] += 1
                    continue
                lat.append(clock() - t0)
                n += 1
            counts[i] = n

        await asyncio.gather(*(work(i) for i in range(len(cps))))
        ended = time.monotonic()
        self.report_calls(counts, errors[0], lats, started, ended)
        await self._close_all(cps, tasks)

    @staticmethod
    async def _close_all(cps: list[Any], tasks: list[asyncio.Task]) -> None:
        async def close(cp: Any) -> None:
            try:
                await asyncio.wait_for(cp._connection.close(), 5)
            except Exception:
                pass

        await asyncio.gather(*(close(cp) for cp in cps))
        for task in tasks:
            task.cancel()


class _ClientsBare(_Clients):
    def run(self) -> None:
        import websocket

        def open_one(station_id: str, kind: str) -> Any:
            return websocket.create_connection(
                f"ws://{HOST}:{self.port}/bare/{kind}/{station_id}",
                subprotocols=[f"ocpp{self.version}"], suppress_origin=True, timeout=30)

        if self.mode == "hold":
            self._hold(open_one)
            return
        text = bare_call(self.kind)
        with ThreadPoolExecutor(8) as pool:
            sockets = list(pool.map(lambda i: open_one(i, self.kind), self.station_ids))
        for ws in sockets:
            for _ in range(self.params.get("warmup", 20)):
                ws.send(text)
                ws.recv()
        self.put("ready")
        self.wait_go()
        duration = self.params["duration"]
        started = time.monotonic()
        end = started + duration
        counts = [0] * len(sockets)
        lats = [array.array("d") for _ in sockets]

        def work(i: int) -> None:
            ws, lat, clock = sockets[i], lats[i], time.perf_counter
            n = 0
            while time.monotonic() < end:
                t0 = clock()
                ws.send(text)
                ws.recv()
                lat.append(clock() - t0)
                n += 1
            counts[i] = n

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sockets))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + 60)
        ended = time.monotonic()
        self.report_calls(counts, 0, lats, started, ended)
        for ws in sockets:
            ws.close(timeout=1)

    def _hold(self, open_one: Any) -> None:
        import websocket

        self.put("ready")
        self.wait_go()
        interval = self.params["heartbeat_interval"]
        heartbeat = bare_call("heartbeat")
        connected = threading.Semaphore(0)
        gate = threading.Semaphore(self.params.get("connect_concurrency", 8))
        counter = {"beats": 0, "failures": 0}
        sockets: list[Any] = []

        def station(i: int, station_id: str) -> None:
            try:
                with gate:
                    ws = open_one(station_id, "heartbeat")
            except Exception:
                counter["failures"] += 1
                connected.release()
                return
            sockets.append(ws)
            connected.release()
            next_beat = time.monotonic() + interval * i / max(1, len(self.station_ids))
            while not self.stop.is_set():
                ws.settimeout(max(0.01, min(0.5, next_beat - time.monotonic())))
                try:
                    text = ws.recv()
                except websocket.WebSocketTimeoutException:
                    text = None
                except Exception:
                    return
                if text and text.startswith("[2"):
                    ws.send(_compact([3, json.loads(text)[1], {"status": "Accepted"}]))
                if time.monotonic() >= next_beat:
                    ws.send(heartbeat)
                    counter["beats"] += 1
                    next_beat += interval

        threads = [threading.Thread(target=station, args=(i, s), daemon=True)
                   for i, s in enumerate(self.station_ids)]
        for t in threads:
            t.start()
        for _ in threads:
            connected.acquire(timeout=120)
        self.put("connected", at=time.monotonic(), failures=counter["failures"])
        self.stop.wait(self.params.get("hold_timeout", 600))
        self.put("held", heartbeats=counter["beats"], errors=0)
        for t in threads:
            t.join(2)
        for ws in sockets:
            try:
                ws.close(timeout=0.5)
            except Exception:
                pass


# -- a "calls" run: one cell of a table ----------------------------------------------------

def run_calls(stack: str, kind: str, stations: int, duration: float, client_procs: int,
              warmup: int = 20) -> dict[str, Any]:
    """Aggregate calls/s and latency percentiles for ``stations`` charge points on one CSMS."""
    server = ServerProcess(stack, max_life=duration + 300)
    group = None
    try:
        ids = [f"CP_{i:05d}" for i in range(stations)]
        group = ClientGroup(stack, server.port, "calls", kind, ids, client_procs,
                            {"duration": duration, "warmup": warmup},
                            max_life=duration + 300)
        group.gather("ready", timeout=180)
        cpu_before = server.cpu_seconds()
        group.go.set()
        reports = group.gather("calls", timeout=duration + 120)
        server_cpu = server.cpu_seconds() - cpu_before
    finally:
        if group is not None:
            group.finish()
        server.stop()
    calls = sum(r["calls"] for r in reports)
    started = min(r["started"] for r in reports)
    ended = max(r["ended"] for r in reports)
    latencies = array.array("d")
    for r in reports:
        latencies.frombytes(r["latencies"])
    lat = sorted(latencies)
    return {
        "stack": stack, "kind": kind, "stations": stations, "calls": calls,
        "errors": sum(r["errors"] for r in reports), "seconds": ended - started,
        "rate": calls / (ended - started),
        "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
        "client_procs": len(reports),
        "server_cpu": server_cpu / (ended - started),
        "client_cpu": sum(r["cpu"] for r in reports) / (ended - started),
    }


def run_rounds(cells: list[tuple[str, str, int]], repeat: int, report: Any = None,
               **options: Any) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Run every (stack, kind, stations) cell ``repeat`` times, interleaved round by round so
    that a noisy neighbour hurts every stack alike; keep each cell's median-rate run."""
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {cell: [] for cell in cells}
    for round_no in range(repeat):
        for stack, kind, stations in cells:
            result = run_calls(stack, kind, stations, **options)
            result["round"] = round_no
            runs[(stack, kind, stations)].append(result)
            if report is not None:
                report(result)
    best = {}
    for cell, results in runs.items():
        ordered = sorted(results, key=lambda r: r["rate"])
        chosen = dict(ordered[(len(ordered) - 1) // 2])
        chosen["rates"] = [r["rate"] for r in results]
        best[cell] = chosen
    return best


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# -- reporting ------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "-"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "ocpp_sync": f"{v('ocpp_sync')} ({commit})",
        "ocpp": v("ocpp"), "websockets": v("websockets"),
        "websocket-client": v("websocket-client"), "simple-websocket": v("simple-websocket"),
    }


def machine_line(info: dict[str, str]) -> str:
    return (f"{info['date']}; {info['cpu']}; {info['os']}; {info['python']}; "
            f"ocpp_sync {info['ocpp_sync']}, ocpp {info['ocpp']}, websockets {info['websockets']}, "
            f"websocket-client {info['websocket-client']}, "
            f"simple-websocket {info['simple-websocket']}")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def check_stacks(names: list[str]) -> list[str]:
    for name in names:
        if name not in STACKS:
            sys.exit(f"unknown stack {name!r}; use {', '.join(STACKS)}")
    return names


__all__ = ["STACKS", "LABELS", "WORKLOADS", "TITLES", "ServerProcess", "ClientGroup", "run_calls",
           "run_rounds", "machine", "machine_line", "table", "save", "ratio",
           "check_stacks",
           "raise_fd_limit"]
