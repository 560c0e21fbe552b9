"""``ocpp-sync fleet``: the plan, the figures, and whole runs against our CSMS on loopback."""
from __future__ import annotations

import io
import json
import os
import queue
import select
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
import trustme
from support.background import Background

from ocpp_sync import CSMS, v16
from ocpp_sync.cli import INTERRUPTED, PASSWORD_VARIABLE
from ocpp_sync.errors import OCPPError
from ocpp_sync.fleet import (
    MIX,
    Figures,
    FleetOptions,
    Histogram,
    build_report,
    format_report,
    plan_digest,
    plan_fleet,
    run_fleet,
    share_out,
)
from ocpp_sync.fleet.progress import RichProgress, live_display, progress_line
from ocpp_sync.fleet.run import Point, Progress, check_alive, halve
from ocpp_sync.fleet.station import STOP, FleetStation
from ocpp_sync.fleet.worker import Worker
from ocpp_sync.security import server_ssl_context, simple_authenticator
from ocpp_sync.sim import CentralSystem, Exchange
from ocpp_sync.testing import csms_url, running_csms

WAIT = 30.0
#: A fast mix: every kind of message within a second or two of the boot.
QUICK = ("--heartbeat-interval", "0.5", "--meter-interval", "0.3", "--samples", "2", "--idle", "0.3")


def quick_options(url: str, **changes: object) -> FleetOptions:
    settings: dict[str, object] = dict(url=url, stations=10, procs=2, version=MIX, ramp=100.0,
                                       duration=1.5, seed=3, heartbeat_interval=0.5,
                                       meter_interval=0.3, samples=2, idle=0.3, charging=0.6,
                                       status_interval=0.7)
    settings.update(changes)
    return FleetOptions(**settings)  # type: ignore[arg-type]


# -- the plan ------------------------------------------------------------------

def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    options = quick_options("ws://127.0.0.1:1/ocpp", stations=50)
    assert plan_fleet(options) == plan_fleet(options)
    other = plan_fleet(quick_options("ws://127.0.0.1:1/ocpp", stations=50, seed=4))
    assert plan_digest(other) != plan_digest(plan_fleet(options))
    plans = plan_fleet(options)
    assert len({p.id for p in plans}) == 50
    assert {p.version for p in plans} == {"1.6", "2.0.1", "2.1"}
    assert [p.connect_at for p in plans[:3]] == [0.0, 0.01, 0.02]  # --ramp 100/s
    assert "hunter2" not in repr(attrs.evolve(options, password="hunter2"))


def test_the_stations_are_dealt_round_robin_and_scenarios_drawn_by_share() -> None:
    options = quick_options("ws://127.0.0.1:1/ocpp", stations=7, scenarios=("a.json", "b.json"),
                            scenario_share=0.5, seed=1)
    plans = plan_fleet(options)
    shares = share_out(plans, 3)
    assert [[p.index for p in share] for share in shares] == [[0, 3, 6], [1, 4], [2, 5]]
    played = [p.scenario for p in plans if p.scenario is not None]
    assert 0 < len(played) < 7 and set(played) <= {0, 1}
    assert not any(p.charges for p in plans if p.scenario is not None)


# -- the figures -----------------------------------------------------------------

def test_percentiles_come_within_a_bucket_and_figures_add_up_across_takes() -> None:
    histogram = Histogram()
    for millisecond in range(1, 101):
        histogram.record(millisecond / 1000)
    for percent, exact in ((50, 0.050), (95, 0.095), (99, 0.099)):
        found = histogram.percentile(percent)
        assert found is not None and exact <= found <= exact * 1.041
    assert Histogram().percentile(99) is None

    worker, fleet = Figures(), Figures()
    worker.sent("Heartbeat")
    worker.answer("Heartbeat", 0.002)
    worker.event("booted")
    fleet.add(worker.take())
    worker.sent("Heartbeat")
    worker.error("Heartbeat", "InternalError", 0.004)
    fleet.add(worker.take())
    assert worker.take()["calls"] == {}  # a take resets
    assert fleet.calls == {"Heartbeat": 2} and fleet.answered == {"Heartbeat": 1}
    assert fleet.errors == {"InternalError": 1} and fleet.events == {"booted": 1}
    assert fleet.latency["Heartbeat"].count == 2


def test_a_long_timeline_is_halved_keeping_the_worst_p99() -> None:
    timeline = [Point(1.0, 10.0, 0.002, 5), Point(2.0, 20.0, None, 6), Point(3.0, 30.0, 0.001, 7)]
    assert halve(timeline) == [Point(2.0, 15.0, 0.002, 6), Point(3.0, 30.0, 0.001, 7)]


class Terminal(io.StringIO):
    """A stream that says it is a terminal, for the display to draw on."""

    def isatty(self) -> bool:
        return True


def test_the_display_is_a_rich_panel_on_a_terminal_and_plain_lines_elsewhere() -> None:
    shown = Progress(seconds=2.0, stations=10, connected=4, calls=57, calls_per_second=28.5,
                     errors=1, refused=2, reconnects=0)
    terminal, lines = Terminal(), []
    display = live_display(terminal, lines.append, every=5.0)
    assert isinstance(display, RichProgress)
    display(shown)
    display.close()
    assert "4 / 10" in terminal.getvalue() and "28.5" in terminal.getvalue() and lines == []

    plain = live_display(io.StringIO(), lines.append, every=5.0)
    for seconds in (1.0, 2.0, 6.0, 7.0, 11.0):
        plain(attrs.evolve(shown, seconds=seconds))
    assert lines == [progress_line(attrs.evolve(shown, seconds=s)) for s in (1.0, 6.0, 11.0)]
    assert lines[0].endswith("connected 4/10, calls 57 (28.5/s), errors 1, refused 2, reconnects 0")


# -- whole runs ------------------------------------------------------------------

def counting_csms(**options: object) -> tuple[Counter[str], set[str], object]:
    """A permissive CSMS's handlers that count the requests it answers, by action."""
    seen: Counter[str] = Counter()
    booted: set[str] = set()
    lock = threading.Lock()

    def count(exchange: Exchange) -> None:
        if exchange.kind == "request" and exchange.sender == "station":
            with lock:
                seen[exchange.action] += 1
                if exchange.action == "BootNotification":
                    booted.add(exchange.station_id)
    return seen, booted, CentralSystem(heartbeat_interval=300, report=count)


def test_a_station_obeys_a_remote_start_and_a_new_heartbeat_interval() -> None:
    seen: Counter[str] = Counter()
    changed = threading.Condition()

    def count(exchange: Exchange) -> None:
        if exchange.kind == "request" and exchange.sender == "station":
            with changed:
                seen[exchange.action] += 1
                changed.notify_all()
    options = quick_options("ws://unused", version="1.6", charging=0.0, heartbeat_interval=None,
                            status_interval=None, meter_interval=0.1, samples=2)
    plan = plan_fleet(options)[0]
    figures, stop = Figures(), threading.Event()
    with running_csms(accept_all=False) as csms:
        CentralSystem(heartbeat_interval=300, report=count).install(csms)
        station = FleetStation(plan, attrs.evolve(options, url=csms_url(csms)), figures)
        driver = threading.Thread(target=station.drive, args=(stop, time.monotonic()),
                                  name="test-fleet-driver", daemon=True)
        driver.start()
        try:
            handle = csms.wait_for_station(plan.id, timeout=WAIT)
            with changed:
                assert changed.wait_for(lambda: seen["StatusNotification"] >= 1, WAIT)
            assert handle.send(v16.RemoteStartTransactionRequest(id_tag="T1", connector_id=1)).status == "Accepted"
            assert handle.send(v16.ChangeConfigurationRequest(key="HeartbeatInterval", value="1")).status == "Accepted"
            with changed:
                assert changed.wait_for(lambda: seen["StopTransaction"] and seen["Heartbeat"], WAIT), seen
        finally:
            stop.set()
            station.commands.put(STOP)
            driver.join(WAIT)
            station.close(0.0)
    assert seen["StartTransaction"] == 1 and seen["MeterValues"] == 2  # --samples, then the stop
    assert figures.calls["Heartbeat"] >= 1 and figures.events["booted"] == 1


def test_a_run_of_ten_stations_on_two_processes_agrees_with_the_csms(tmp_path: Path) -> None:
    scenario = tmp_path / "charge.json"
    scenario.write_text(json.dumps(["boot", {"status": {"status": "Available"}}, "authorize",
                                    "start", {"meter": {"samples": 2, "interval": 0.1}}, "stop"]))
    seen, booted, central = counting_csms()
    with running_csms(accept_all=False) as csms:
        central.install(csms)  # type: ignore[attr-defined]
        options = quick_options(csms_url(csms), scenarios=(str(scenario),), scenario_share=0.3)
        outcome = run_fleet(options)
    report = build_report(outcome)
    players = [p for p in plan_fleet(options) if p.scenario is not None]
    assert 0 < len(players) < 10
    assert report["scenarios_passed"] == len(players) and report["scenarios_failed"] == 0
    assert report["stations"] == 10 and report["procs"] == 2
    assert report["connected"] == 10 and report["booted"] == 10 and report["refused"] == 0
    assert booted == {p.id for p in plan_fleet(options)}
    assert report["errors"] == {}
    calls = {action: entry["calls"] for action, entry in report["actions"].items()}
    assert calls == dict(seen)
    assert all(entry["answered"] == entry["calls"] for entry in report["actions"].values())
    for action in ("Heartbeat", "StatusNotification", "Authorize"):
        assert calls.get(action, 0) > 0, action
    assert report["calls"] == sum(calls.values())
    assert 0 < report["latency"]["p50_ms"] <= report["latency"]["p99_ms"]
    assert report["plan"] == plan_digest(plan_fleet(options))  # the seed's plan, reproducible
    assert set(report["cpu_seconds"]) == {"worker 0", "worker 1", "parent"}
    assert report["timeline"] and report["peak_connected"] == 10
    table = format_report(report)
    assert "BootNotification" in table and "connects 10, refused 0" in table


class WorkerInProcess:
    """A fleet worker run in a thread of the test's process: the same code without a spawn."""

    def __init__(self, options: FleetOptions) -> None:
        self.outbox: queue.Queue[tuple[str, int, dict[str, Any]]] = queue.Queue()
        self.worker = Worker(0, options, plan_fleet(options), [], self.outbox)
        self.figures = Figures()
        self.stop = threading.Event()
        go = threading.Event()
        go.set()
        self.thread = threading.Thread(target=self.worker.run, name="test-fleet-worker", daemon=True,
                                       args=(go, SimpleNamespace(value=time.monotonic()), self.stop))
        self.thread.start()

    def wait_connected(self, count: int) -> None:
        """Read the worker's reports until one says ``count`` stations are connected."""
        deadline = time.monotonic() + WAIT
        while True:
            kind, _, values = self.outbox.get(timeout=max(0.0, deadline - time.monotonic()))
            if kind == "figures":
                self.figures.add(values["figures"])
                if values["connected"] == count:
                    return

    def finish(self) -> Figures:
        self.stop.set()
        self.thread.join(WAIT)
        while not self.outbox.empty():
            kind, _, values = self.outbox.get_nowait()
            if kind == "figures":
                self.figures.add(values["figures"])
        return self.figures


def test_stations_come_back_and_boot_again_when_the_csms_restarts() -> None:
    seen, _, central = counting_csms()
    with running_csms() as first:
        port = first.port
        worker = WorkerInProcess(quick_options(csms_url(first), stations=3, charging=0.0,
                                               status_interval=None, reconnect_wait=0.2))
        worker.wait_connected(3)
    worker.wait_connected(0)
    second = CSMS(timeout=WAIT)
    central.install(second)
    second.start("127.0.0.1", port)  # the same port, as a restarted CSMS
    try:
        worker.wait_connected(3)
    finally:
        figures = worker.finish()
        second.stop()
    assert figures.events["disconnects"] == 3 and figures.events["reconnects"] == 3
    assert figures.events["booted"] == 3 and seen["BootNotification"] == 3  # each told the new CSMS


def test_a_worker_that_ends_before_it_was_told_to_ends_the_run() -> None:
    workers = [SimpleNamespace(exitcode=None), SimpleNamespace(exitcode=-9)]
    with pytest.raises(OCPPError, match="worker 1 ended during the run"):
        check_alive(workers, done=set())
    check_alive(workers, done={1})  # it had said it was done


def fleet_cli(*args: str) -> Background:
    return Background([sys.executable, "-m", "ocpp_sync.cli", "fleet", *args], wait=WAIT)


def test_off_a_terminal_the_cli_prints_plain_lines_counts_a_refusal_and_writes_json_and_a_plot(
        tmp_path: Path) -> None:
    report_path, plot_path = tmp_path / "report.json", tmp_path / "fleet.png"
    # One password per station, given as a template in the environment; CLI00001 has none: 401.
    passwords = {"CLI00000": "pw-CLI00000", "CLI00002": "pw-CLI00002"}
    with running_csms(authenticate=simple_authenticator(passwords)) as csms:
        run = Background([sys.executable, "-m", "ocpp_sync.cli", "fleet", csms_url(csms),
                          "--stations", "3", "--duration", "1.2", "--id-prefix", "CLI",
                          "--progress-every", "0.4", *QUICK,
                          "--json", str(report_path), "--plot", str(plot_path)],
                         wait=WAIT, env={PASSWORD_VARIABLE: "pw-{id}"})
        code = run.wait()
    assert code == 1, run.text  # a station that never got connected fails the run
    progress = [line for line in run.output if line.startswith("[") and "connected" in line]
    assert len(progress) >= 2, run.text
    assert "\x1b[" not in run.text  # no terminal drawing off a terminal
    assert "connects 2, refused 1" in run.text and "pw-" not in run.text
    report = json.loads(report_path.read_text())
    assert report["refused"] == 1 and report["connected"] == 2 and report["booted"] == 2
    assert report["errors"] == {"HTTP 401": 1} and "connect" not in report["actions"]
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _workers(pid: int) -> list[int]:
    """The fleet workers ``pid`` spawned (Linux /proc); not spawn's resource tracker, which
    ends by itself once its parent is gone."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Still there and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")
def test_ctrl_c_stops_every_worker_and_reports_what_it_has() -> None:
    with running_csms() as csms:
        run = fleet_cli(csms_url(csms), "--stations", "4", "--procs", "2", "--id-prefix", "INT",
                        "--progress-every", "0.5", "--json", "-", *QUICK)
        run.expect(r"connected 4/4")
        workers = _workers(run.process.pid)
        assert len(workers) == 2
        code = run.interrupt()
    assert code == INTERRUPTED, run.text
    assert "fleet interrupted (Ctrl-C)" in run.text and "connects 4, refused 0" in run.text
    assert "Heartbeat" in run.text
    report = json.loads(run.text[run.text.index("\n{") + 1:])  # --json -: the report last, on stdout
    assert report["interrupted"] is True and report["connected"] == 4
    assert [pid for pid in workers if _running(pid)] == []


def test_stations_verify_a_wss_csms_with_the_ca_they_are_given(tmp_path: Path) -> None:
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1")
    cert, key, ca = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    ca.write_bytes(authority.cert_pem.bytes())
    with running_csms(ssl_context=server_ssl_context(cert, key)) as csms:
        worker = WorkerInProcess(quick_options(f"wss://127.0.0.1:{csms.port}/ocpp", stations=2,
                                               cafile=str(ca)))
        try:
            worker.wait_connected(2)
        finally:
            figures = worker.finish()
    assert figures.events["connected"] == 2 and figures.events["booted"] == 2 and not figures.errors


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on the workers with pidfd_open (Linux)")
def test_workers_stop_by_themselves_when_the_parent_is_killed() -> None:
    with running_csms() as csms:
        run = fleet_cli(csms_url(csms), "--stations", "2", "--id-prefix", "ORPHAN",
                        "--progress-every", "0.5", *QUICK)
        try:
            run.expect(r"connected 2/2")
            workers = [os.pidfd_open(pid) for pid in _workers(run.process.pid)]
        finally:
            run.kill()  # SIGKILL: the parent can neither stop nor terminate anything
        assert len(workers) == 1
        try:
            ended, _, _ = select.select(workers, [], [], WAIT)
        finally:
            for descriptor in workers:
                os.close(descriptor)
    assert ended == workers
