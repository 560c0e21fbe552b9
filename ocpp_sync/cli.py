"""The ``ocpp-sync`` command: a demo session, a permissive CSMS and a charge point simulator.

The behaviour lives in :mod:`ocpp_sync.sim`; this module parses
arguments, prints the exchanges and turns the outcome into an exit status.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import ocpp_sync
from ocpp_sync.conformance import console as conformance
from ocpp_sync.errors import OCPPError
from ocpp_sync.fleet import MIX, FleetOptions, fleet_command
from ocpp_sync.protocol.retry import BackOff
from ocpp_sync.protocol.versions import version_module
from ocpp_sync.sim import CSMS as CSMS_SIDE
from ocpp_sync.sim import (
    CentralSystem,
    Exchange,
    ScenarioError,
    StationSimulator,
    StepResult,
    check_connectors,
    load_scenario,
    run_scenario,
)
from ocpp_sync.websocket.client import check_url

VERSIONS = ("1.6", "2.0.1", "2.1")
DEMO_STATION = "DEMO_CP"
#: Where ``ocpp-sync station`` finds the station's password when ``--password`` is not given.
PASSWORD_VARIABLE = "OCPP_SYNC_PASSWORD"
#: The exit status after Ctrl-C, as a shell reports a program that SIGINT ended.
INTERRUPTED = 130


class DemoFailed(Exception):
    """The demo session did not go as an OCPP session should."""


def _compact(payload: Any) -> str:
    return json.dumps(payload, separators=(", ", ": "), default=str)


def exchange_line(exchange: Exchange, *, show_station: bool = False) -> str:
    """One readable line per message, arrows pointing from sender to receiver."""
    arrow = "CP -> CSMS" if exchange.sender != CSMS_SIDE else "CP <- CSMS"
    label = exchange.action if exchange.kind == "request" else f"{exchange.action} ({exchange.kind})"
    prefix = f"[{exchange.station_id}] " if show_station else "  "
    return f"{prefix}{arrow}  {label:<32} {_compact(exchange.payload)}"


def say(text: str) -> None:
    """Print a line at once; a reader that went away (``| head``) silences us instead of failing."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _printer(show_station: bool) -> Callable[[Exchange], None]:
    def show(exchange: Exchange) -> None:
        say(exchange_line(exchange, show_station=show_station))
    return show


def _heading(text: str) -> None:
    say(f"\n== {text}")


# -- demo ---------------------------------------------------------------------

def run_demo(version: str) -> None:
    """One station's life against a CSMS on loopback; raises DemoFailed if a step goes wrong."""
    started = time.monotonic()
    csms = ocpp_sync.CSMS(versions=(version,))
    central = CentralSystem(heartbeat_interval=300)
    central.install(csms)
    csms.start("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{csms.port}/ocpp"
    say(f"CSMS listening on {url}/<station id>, OCPP {version}")
    sim = StationSimulator(url, DEMO_STATION, version, report=_printer(show_station=False))
    try:
        _heading(f"{DEMO_STATION} connects and boots")
        sim.connect()
        station = csms.wait_for_station(DEMO_STATION, timeout=10)
        _expect(sim.boot().status == "Accepted", "the CSMS did not accept the boot")
        sim.heartbeat()
        sim.status("Available")

        _heading("A driver presents a tag and charges")
        _expect(sim.authorize(), "the CSMS did not authorize the tag")
        transaction_id = sim.start_transaction()
        sim.status("Charging")
        for _ in range(3):
            sim.meter_values()

        _heading("The CSMS inspects and reconfigures the station, then stops the charge")
        _csms_commands(station, version, transaction_id)
        command = sim.wait_for_command(timeout=10)
        _expect(command is not None and command.name == "remote_stop",
                f"the station queued {command} instead of a remote stop")
        assert command is not None
        sim.carry_out(command)
    finally:
        sim.close()
        csms.stop()
    record = central.transaction(DEMO_STATION, transaction_id)
    _expect(record.get("meter_stop") is not None, "the CSMS never saw the transaction end")
    _summary(version, sim, record, transaction_id, time.monotonic() - started)


def _csms_commands(station: Any, version: str, transaction_id: Any) -> None:
    """What a CSMS operator would do: read settings, change one, stop the charge remotely."""
    m = version_module(version)
    if version == "1.6":
        station.send(m.GetConfigurationRequest(key=["HeartbeatInterval", "MeterValueSampleInterval"]))
        changed = station.send(m.ChangeConfigurationRequest(key="MeterValueSampleInterval", value="30"))
        _expect(changed.status == "Accepted", "the station refused the configuration change")
        stop = station.send(m.RemoteStopTransactionRequest(transaction_id=transaction_id))
    else:
        component, variable = m.ComponentType(name="OCPPCommCtrlr"), m.VariableType(name="HeartbeatInterval")
        station.send(m.GetVariablesRequest(get_variable_data=[
            m.GetVariableDataType(component=component, variable=variable)]))
        changed = station.send(m.SetVariablesRequest(set_variable_data=[m.SetVariableDataType(
            component=m.ComponentType(name="SampledDataCtrlr"),
            variable=m.VariableType(name="TxUpdatedInterval"), attribute_value="30")]))
        _expect(changed.set_variable_result[0].attribute_status == "Accepted",
                "the station refused the variable change")
        stop = station.send(m.RequestStopTransactionRequest(transaction_id=transaction_id))
    _expect(stop.status == "Accepted", "the station refused the remote stop")


def _expect(condition: bool, failure: str) -> None:
    if not condition:
        raise DemoFailed(failure)


def _summary(version: str, sim: StationSimulator, record: dict[str, Any], transaction_id: Any,
             seconds: float) -> None:
    _heading("Summary")
    for sender, title in (("station", "CP -> CSMS"), (CSMS_SIDE, "CSMS -> CP")):
        calls = sorted((action, n) for (who, action), n in sim.counts.items() if who == sender)
        listed = ", ".join(f"{action} x{n}" if n > 1 else action for action, n in calls)
        say(f"  {title}: {sum(n for _, n in calls)} calls ({listed})")
    energy = record["meter_stop"] - record.get("meter_start", 0)
    say(f"  transaction {transaction_id}: {energy} Wh, ended ({record.get('reason', '?')})")
    say(f"  OCPP {version} session completed in {seconds:.2f} s")


# -- csms ---------------------------------------------------------------------

def run_csms(host: str, port: int, versions: Sequence[str], heartbeat_interval: int,
             stop: threading.Event) -> None:
    """Serve until ``stop`` is set (or Ctrl-C, which propagates once the CSMS has stopped)."""
    csms = ocpp_sync.CSMS(versions=tuple(versions))
    CentralSystem(heartbeat_interval=heartbeat_interval,
                  report=_printer(show_station=True)).install(csms)
    csms.on_connect(lambda station: say(
        f"[{station.id}] connected (OCPP {station.version}) from {station.remote_address}"))
    csms.on_disconnect(lambda station: say(f"[{station.id}] disconnected"))
    csms.start(host, port)
    say(f"CSMS listening on ws://{host}:{csms.port}/<station id> "
        f"(OCPP {', '.join(csms.versions)}); Ctrl-C stops")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        csms.stop()
        say("CSMS stopped")


# -- station ------------------------------------------------------------------

def run_station(url: str, station_id: str, version: str, *, once: bool, samples: int,
                interval: float, id_tag: str | list[str], stop: threading.Event,
                connectors: int = 1, quiet: bool = False, password: str | None = None,
                reconnect: bool = False, reconnect_wait: float = 5.0) -> int:
    """Run the built-in session; 1 if the CSMS went away (without ``reconnect``) or refused us."""
    tags = [id_tag] if isinstance(id_tag, str) else id_tag
    sim = StationSimulator(url, station_id, version, id_tag=tags[0], id_tags=tags,
                           connectors=connectors, password=password, reconnect=reconnect,
                           backoff=BackOff(reconnect_wait, reconnect_wait),
                           report=None if quiet else _printer(show_station=False))
    interrupted = False
    try:
        say(f"{station_id} connecting to {url} (OCPP {version}"
            f"{', with a password' if password else ''})")
        sim.connect()
        say(f"{station_id} connected to {url} (OCPP {version}, {connectors} connector(s))")
        sim.run(stop, once=once, samples=samples, interval=interval)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        lost = not sim.cp.connected
        sim.close(0.0 if interrupted else None)  # after Ctrl-C nobody waits for answers still due
    if not once and not stop.is_set() and not interrupted and lost:
        print("the CSMS closed the connection", file=sys.stderr)
        return 1
    say(f"{station_id} done: {sim.transactions_done} transaction(s)")
    return INTERRUPTED if interrupted else 0


def progress_line(result: StepResult) -> str:
    """One line per scenario step: where we are, what, how it went, how long it took."""
    width = len(str(result.total))
    outcome = "ok    " if result.ok else "FAILED"
    return (f"[{result.number:>{width}}/{result.total}] {result.step.describe():<40} "
            f"{outcome} {result.result} ({result.seconds:.2f} s)")


def _show_step(result: StepResult, quiet: bool) -> None:
    """Every step on stdout; with ``quiet`` only a failed one, on stderr."""
    if not quiet:
        say(progress_line(result))
    elif not result.ok:
        print(progress_line(result), file=sys.stderr)


def run_scenario_file(url: str, station_id: str, version: str, path: str, *, id_tags: list[str],
                      connectors: int, quiet: bool, interval: float = 1.0,
                      password: str | None = None) -> int:
    """Play a scenario file; 2 if the file is bad (before connecting), 1 if a step fails."""
    try:
        steps = load_scenario(path)
        check_connectors(steps, connectors)
    except ScenarioError as exc:
        print(f"bad scenario: {exc}", file=sys.stderr)
        return 2
    sim = StationSimulator(url, station_id, version, id_tag=id_tags[0], id_tags=id_tags,
                           connectors=connectors, meter_interval=interval, password=password)
    started = time.monotonic()
    drain = None
    try:
        sim.connect()
        if not quiet:
            say(f"{station_id} connected to {url} (OCPP {version}); {len(steps)} steps from {path}")
        ok = run_scenario(sim, steps, lambda result: _show_step(result, quiet))
    except KeyboardInterrupt:
        drain = 0.0
        raise
    finally:
        sim.close(drain)
    if not ok:
        print(f"scenario {path} failed", file=sys.stderr)
        return 1
    if not quiet:
        say(f"scenario {path} passed: {len(steps)} steps in {time.monotonic() - started:.2f} s")
    return 0


# -- entry point ----------------------------------------------------------------

def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


class StationURL(str):
    """A CSMS URL with any ``user:password@`` taken out (sent as Basic auth, never printed)."""

    user: str | None = None
    password: str | None = None


def station_url(text: str) -> StationURL:
    """argparse type: a ``ws://`` or ``wss://`` URL with a host, its userinfo split off."""
    try:
        check_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    parts = urllib.parse.urlsplit(text)
    netloc = parts.netloc.rpartition("@")[2]
    url = StationURL(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    url.user = None if parts.username is None else urllib.parse.unquote(parts.username)
    url.password = None if parts.password is None else urllib.parse.unquote(parts.password)
    return url


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The epilog's examples as written, and each option's default when it has a real one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0 or action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    # -v is accepted before the subcommand and after it (counted together).
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=0, dest="verbose_after",
                           help="log the library's activity (twice: every frame)")
    parser = argparse.ArgumentParser(
        prog="ocpp-sync", formatter_class=HelpFormatter,
        description="OCPP-J from the command line: a demo session, a CSMS, a charge point simulator.",
        epilog="examples:\n"
               "  ocpp-sync demo --version 2.0.1\n"
               "  ocpp-sync csms --port 9000\n"
               "  ocpp-sync station ws://127.0.0.1:9000/ocpp --id CP_1 --version 1.6\n"
               "  OCPP_SYNC_PASSWORD=secret ocpp-sync station ws://127.0.0.1:5000/ocpp --id CP_1\n"
               "  ocpp-sync station ws://127.0.0.1:9000/ocpp --id CP_2 --version 2.0.1 \\\n"
               "      --connectors 2 --scenario examples/scenario_v201.json\n"
               "  ocpp-sync conformance --role csms --url ws://127.0.0.1:9000/ocpp --id CP_1 "
               "--cases 'TC_B_*'\n"
               "  ocpp-sync fleet ws://127.0.0.1:9000/ocpp --stations 100 --procs 2 --ramp 20 \\\n"
               "      --version mix --duration 60 --seed 7 --json report.json --plot fleet.png")
    parser.add_argument("--version", action="version", version=f"ocpp-sync {ocpp_sync.__version__}",
                        help="print the version of ocpp-sync and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log the library's activity (twice: every frame)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, formatter_class=HelpFormatter,
                                   parents=[verbosity])

    demo = command("demo", "a CSMS and a charge point talking on loopback")
    demo.add_argument("--version", choices=VERSIONS, default="1.6", help="the OCPP version")

    csms = command("csms", "a CSMS that accepts any station and logs what it gets")
    csms.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    csms.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    csms.add_argument("--version", choices=VERSIONS, action="append",
                      help="accept this version (repeatable; default: all)")
    csms.add_argument("--heartbeat-interval", type=int, default=300,
                      help="the interval the boot answer gives stations (s)")

    station = command("station", "a simulated charge point for any CSMS")
    station.add_argument("url", type=station_url,
                         help="the CSMS's websocket URL (ws:// or wss://); the id is appended to "
                              "its path; ws://ID:PASSWORD@host/... logs in like --password")
    station.add_argument("--id", required=True, help="the charge point's identity")
    station.add_argument("--version", choices=VERSIONS, default="1.6", help="the OCPP version")
    station.add_argument("--password",
                         help="HTTP Basic auth password (security profile 1/2), never printed; "
                              f"default: ${PASSWORD_VARIABLE}, which keeps it out of the process list")
    station.add_argument("--no-reconnect", dest="reconnect", action="store_false",
                         help="exit (status 1) when the CSMS closes the connection, instead of "
                              "reconnecting as a ChargePoint does")
    station.add_argument("--reconnect-wait", type=_seconds, default=5.0, metavar="SECONDS",
                         help="the first wait before reconnecting (doubling per attempt, plus up "
                              "to as much at random)")
    station.add_argument("--once", action="store_true",
                         help="exit after the first transaction instead of staying connected")
    station.add_argument("--samples", type=int, default=3, help="meter values per transaction")
    station.add_argument("--interval", type=float, default=1.0,
                         help="seconds between meter values (a scenario's meter steps too)")
    station.add_argument("--id-tag", action="append", dest="id_tags", metavar="TAG",
                         help="a tag the station presents (repeatable; connector n uses the "
                              "n-th; default DEMO-TAG-01)")
    station.add_argument("--connectors", type=_positive, default=1,
                         help="connectors, each with its own status and transaction")
    station.add_argument("--scenario", metavar="FILE",
                         help="play the steps of this JSON (or YAML) file instead of the "
                              "built-in session")
    station.add_argument("-q", "--quiet", action="store_true",
                         help="print no messages or step progress, only the outcome")

    conformance.add_arguments(command("conformance", "play OCTT test cases against a real CSMS "
                                                     "or station (docs/conformance.md)"))
    _fleet_parser(command("fleet", "many simulated charge points against one CSMS, with a report"))
    return parser


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _fleet_parser(fleet: argparse.ArgumentParser) -> None:
    fleet.add_argument("url", type=station_url,
                       help="the CSMS's websocket URL (ws:// or wss://); each station's id is "
                            "appended to its path")
    fleet.add_argument("--stations", type=_positive, default=10, help="how many stations")
    fleet.add_argument("--version", choices=(*VERSIONS, MIX), default="1.6",
                       help="the OCPP version; mix: each station draws one")
    fleet.add_argument("--procs", type=_positive, default=1,
                       help="worker processes the stations are spread over")
    fleet.add_argument("--ramp", type=_seconds, default=50.0, metavar="PER_SECOND",
                       help="connects per second across the fleet")
    fleet.add_argument("--duration", type=_seconds, metavar="SECONDS",
                       help="seconds from the first connect to the end (default: until Ctrl-C)")
    fleet.add_argument("--seed", type=int, default=0,
                       help="the seed of the plan: station versions, timings and mix")
    fleet.add_argument("--id-prefix", default="FLEET",
                       help="station ids are this prefix and a five-digit number")
    fleet.add_argument("--heartbeat-interval", type=_seconds, metavar="SECONDS",
                       help="seconds between Heartbeats (default: what the boot answer says)")
    fleet.add_argument("--status-interval", type=_seconds, metavar="SECONDS",
                       help="repeat a StatusNotification this often (default: only on changes)")
    fleet.add_argument("--charging", type=_share, default=0.5, metavar="SHARE",
                       help="the share of stations (0 to 1) that run transactions")
    fleet.add_argument("--meter-interval", type=_seconds, default=10.0, metavar="SECONDS",
                       help="seconds between meter values in a transaction")
    fleet.add_argument("--samples", type=_positive, default=6, help="meter values per transaction")
    fleet.add_argument("--idle", type=_seconds, default=30.0, metavar="SECONDS",
                       help="mean seconds between a station's transactions")
    fleet.add_argument("--connectors", type=_positive, default=1,
                       help="connectors per station (the built-in mix charges on the first)")
    fleet.add_argument("--scenario", action="append", metavar="FILE",
                       help="a scenario file as `station --scenario` takes (repeatable); "
                            "stations that play one draw it at random")
    fleet.add_argument("--scenario-share", type=_share, default=1.0, metavar="SHARE",
                       help="the share of stations that play a scenario file when any is given")
    fleet.add_argument("--password",
                       help="HTTP Basic auth password for every station ({id} becomes the "
                            f"station's id); default: ${PASSWORD_VARIABLE}")
    fleet.add_argument("--ca", metavar="FILE",
                       help="the CA bundle that verifies a wss:// CSMS (security profiles 2 and 3)")
    fleet.add_argument("--timeout", type=_seconds, default=30.0,
                       help="seconds a call waits for its answer")
    fleet.add_argument("--reconnect-wait", type=_seconds, default=5.0, metavar="SECONDS",
                       help="the first wait before a lost station reconnects (doubling per "
                            "attempt, plus up to as much at random)")
    fleet.add_argument("--json", metavar="FILE", dest="json_path",
                       help="also write the report as JSON to FILE (-: stdout, the table "
                            "then goes to stderr)")
    fleet.add_argument("--plot", metavar="FILE.png",
                       help="draw calls/s and p99 latency over time into this PNG (matplotlib)")
    fleet.add_argument("--progress-every", type=_seconds, default=5.0, metavar="SECONDS",
                       help="seconds between progress lines when the output is not a terminal")


def run_fleet_command(args: argparse.Namespace, log_level: int, stop: threading.Event) -> int:
    """Turn the parsed options into a FleetOptions and run it until its end or ``stop``."""
    url: StationURL = args.url
    options = FleetOptions(
        url=url, stations=args.stations, version=args.version, procs=args.procs, ramp=args.ramp,
        duration=args.duration, seed=args.seed, id_prefix=args.id_prefix,
        heartbeat_interval=args.heartbeat_interval, status_interval=args.status_interval,
        charging=args.charging, meter_interval=args.meter_interval, samples=args.samples,
        idle=args.idle, connectors=args.connectors, scenarios=tuple(args.scenario or ()),
        scenario_share=args.scenario_share,
        password=args.password or url.password or os.environ.get(PASSWORD_VARIABLE) or None,
        cafile=args.ca, timeout=args.timeout, reconnect_wait=args.reconnect_wait)
    return fleet_command(options, say=say, json_path=args.json_path, plot_path=args.plot,
                         progress_every=args.progress_every,
                         # Without -v, a fleet's workers log errors only: a CSMS restart would
                         # otherwise print a reconnect warning per station.
                         log_level=logging.ERROR if log_level == logging.WARNING else log_level,
                         stop=stop)


def _password(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """--password, else the URL's, else the environment's; the URL's user must be the id."""
    url: StationURL = args.url
    if url.user is not None and url.user != args.id:
        parser.error(f"the URL logs in as {url.user!r} but --id is {args.id!r}: the CSMS "
                     "takes the station id as the Basic auth user")
    return args.password or url.password or os.environ.get(PASSWORD_VARIABLE) or None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = args.verbose + args.verbose_after
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    try:
        if args.command == "demo":
            run_demo(args.version)
            return 0
        if threading.current_thread() is threading.main_thread():
            # Long-running commands end cleanly on SIGTERM as on Ctrl-C.
            signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        if args.command == "conformance":
            return conformance.main(args, parser.error)
        if args.command == "fleet":
            return run_fleet_command(args, level, stop)
        if args.command == "csms":
            run_csms(args.host, args.port, args.version or VERSIONS, args.heartbeat_interval, stop)
            return 0
        tags = args.id_tags or ["DEMO-TAG-01"]
        password = _password(parser, args)
        if args.scenario:
            return run_scenario_file(args.url, args.id, args.version, args.scenario,
                                     id_tags=tags, connectors=args.connectors, quiet=args.quiet,
                                     interval=args.interval, password=password)
        return run_station(args.url, args.id, args.version, once=args.once, samples=args.samples,
                           interval=args.interval, id_tag=tags, stop=stop,
                           connectors=args.connectors, quiet=args.quiet, password=password,
                           reconnect=args.reconnect, reconnect_wait=args.reconnect_wait)
    except KeyboardInterrupt:
        # Ctrl-C is how these commands are meant to end: quietly, with the shell's status.
        return INTERRUPTED
    except DemoFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
    except ScenarioError as exc:
        print(f"bad scenario: {exc}", file=sys.stderr)
        return 2
    except (OCPPError, ConnectionError, TimeoutError, OSError) as exc:
        print(f"{args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
