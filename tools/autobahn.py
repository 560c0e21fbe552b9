#!/usr/bin/env python3
"""Run the Autobahn|Testsuite against our websocket server and client, and summarise it.

Usage:
    python tools/autobahn.py [--wstest PATH] [--side server|client|both] [--cases 1.* 2.*]
                             [--exclude 12.* 13.*] [--reports DIR] [--timeout SECONDS]

The suite is Python 2 only (``wstest`` from the ``autobahntestsuite`` package, run with
Python 2.7; docs/autobahn.md says how to install it outside the repository).

* server side: our listener (``ocpp_sync.runtime.listener.WebSocketServer`` with the inline
  transport) echoes on 127.0.0.1, and ``wstest -m fuzzingclient`` runs every case against it;
* client side: ``wstest -m fuzzingserver`` listens on 127.0.0.1, and our client transport
  (websocket-client's handshake, then ``InlineTransport`` in client mode) connects to each
  case's URL and echoes, then asks for the reports.

Both echo endpoints are in tools/autobahn_echo.py. Reports (HTML and JSON) go to ``--reports``
(default build/autobahn, ignored by git); the summary counts each case's worst verdict (of its
behaviour and its closing behaviour). Permessage-deflate (12.*, 13.*) is excluded by default:
we offer no extension. Every step is bounded: a side that runs past ``--timeout`` is stopped
and summarised with the cases it finished. The exit status is 1 if any case FAILED.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import autobahn_echo  # noqa: E402  (tools/ is not a package)

ROOT = Path(__file__).resolve().parent.parent
AGENT = "ocpp_sync"
EXCLUDED = ["12.*", "13.*"]   # permessage-deflate: we negotiate no extension
VERDICTS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
# Worst first, for a case whose behaviour and closing behaviour differ.
_RANK = {"FAILED": 5, "WRONG CODE": 4, "UNCLEAN": 4, "FAILED BY CLIENT": 4, "UNIMPLEMENTED": 3,
         "NON-STRICT": 2, "INFORMATIONAL": 1, "OK": 0}

log = logging.getLogger("ocpp_sync.tools.autobahn")


def default_wstest() -> str:
    return os.environ.get("AUTOBAHN_WSTEST") or shutil.which("wstest") or "/work/ab-venv/bin/wstest"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verdict(result: dict[str, Any]) -> str:
    """One case's verdict: the worse of its behaviour and its closing behaviour, closing
    faults (wrong code, unclean) counting as FAILED, as the suite's own report colours them."""
    worst = max((result.get("behavior", "FAILED"), result.get("behaviorClose", "OK")),
                key=lambda v: _RANK.get(v, 5))
    return worst if worst in VERDICTS else "FAILED"


def summarise(index: Path) -> dict[str, Any]:
    """Counts per verdict and the cases that are not OK, from the suite's index.json."""
    if not index.exists():
        return {"counts": {}, "cases": {}, "missing": True}
    results = json.loads(index.read_text(encoding="utf-8")).get(AGENT, {})
    cases = {case: verdict(result) for case, result in results.items()}
    counts = Counter(cases.values())
    details = {case: {"behavior": results[case].get("behavior"),
                      "behaviorClose": results[case].get("behaviorClose"),
                      "remoteCloseCode": results[case].get("remoteCloseCode")}
               for case, v in cases.items() if v != "OK"}
    return {"counts": {v: counts.get(v, 0) for v in VERDICTS}, "total": len(cases),
            "not_ok": dict(sorted(details.items(), key=lambda kv: _case_key(kv[0])))}


def _case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split(".") if part.isdigit())


def _run_bounded(command: list[str], log_path: Path, deadline: float) -> int | None:
    """Run ``command`` with its output in ``log_path``; stopped (by its pid) at ``deadline``;
    None if it had to be stopped."""
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            return proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop(proc)
            return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_server_side(wstest: str, cases: list[str], exclude: list[str], reports: Path,
                    timeout: float) -> dict[str, Any]:
    """Our listener echoes; the suite's fuzzing client runs the cases against it."""
    outdir = reports / "servers"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    server = autobahn_echo.EchoServer("127.0.0.1", 0)
    server.start()
    spec = {"outdir": str(outdir), "cases": cases, "exclude-cases": exclude,
            "exclude-agent-cases": {},
            "servers": [{"agent": AGENT, "url": f"ws://127.0.0.1:{server.port}/echo"}]}
    spec_path = reports / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    started = time.monotonic()
    try:
        rc = _run_bounded([wstest, "-m", "fuzzingclient", "-s", str(spec_path)],
                          reports / "fuzzingclient.log", started + timeout)
    finally:
        server.stop()
    summary = summarise(outdir / "index.json")
    summary.update(seconds=round(time.monotonic() - started, 1), stopped=rc is None)
    return summary


def _wait_listening(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return True
        except OSError:
            time.sleep(0.1)   # a child process coming up: nothing to wait on but the port
    return False


def _case_count(base: str) -> int:
    transport = autobahn_echo.open_client(f"{base}/getCaseCount")
    try:
        message = transport.receive(timeout=10.0)
    finally:
        transport.close()
    return int(message or 0)


def _echo_case(url: str, case_timeout: float) -> None:
    """One case on our client transport, in a thread of its own so that a case that never
    ends is given up (its socket aborted) after ``case_timeout``."""
    holder: dict[str, autobahn_echo.EchoTransport] = {}
    done = threading.Event()

    def run() -> None:
        try:
            transport = autobahn_echo.open_client(url)
        except Exception as exc:   # the case may refuse or break the handshake on purpose
            log.info("%s: %s", url, exc)
            done.set()
            return
        holder["t"] = transport
        try:
            autobahn_echo.echo(transport)
        finally:
            transport.close()
            done.set()

    thread = threading.Thread(target=run, name="autobahn-case", daemon=True)
    thread.start()
    if not done.wait(case_timeout) and "t" in holder:
        holder["t"]._abort()
    thread.join(case_timeout)


def run_client_side(wstest: str, cases: list[str], exclude: list[str], reports: Path,
                    timeout: float, case_timeout: float = 60.0) -> dict[str, Any]:
    """The suite's fuzzing server; our client transport connects to every case and echoes."""
    outdir = reports / "clients"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    port = free_port()
    base = f"ws://127.0.0.1:{port}"
    spec = {"url": base, "outdir": str(outdir), "cases": cases, "exclude-cases": exclude,
            "exclude-agent-cases": {}}
    spec_path = reports / "fuzzingserver.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    started = time.monotonic()
    deadline = started + timeout
    with open(reports / "fuzzingserver.log", "wb") as out:
        proc = subprocess.Popen([wstest, "-m", "fuzzingserver", "-s", str(spec_path), "-u", "0"],
                                stdout=out, stderr=subprocess.STDOUT)
    stopped = False
    try:
        if not _wait_listening(port, min(deadline, time.monotonic() + 30.0)):
            raise RuntimeError(f"wstest fuzzingserver did not listen on {port}")
        count = _case_count(base)
        agent = quote(AGENT)
        for case in range(1, count + 1):
            if time.monotonic() >= deadline:
                stopped = True
                break
            _echo_case(f"{base}/runCase?case={case}&agent={agent}",
                       min(case_timeout, max(1.0, deadline - time.monotonic())))
        autobahn_echo.open_client(f"{base}/updateReports?agent={agent}").close()
        _wait_for(outdir / "index.json", time.monotonic() + 30.0)
    finally:
        _stop(proc)
    summary = summarise(outdir / "index.json")
    summary.update(seconds=round(time.monotonic() - started, 1), stopped=stopped)
    return summary


def _wait_for(path: Path, deadline: float) -> None:
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)   # written by the child process: nothing to wait on but the file


def print_summary(side: str, summary: dict[str, Any]) -> None:
    if summary.get("missing"):
        print(f"{side}: no report (see the wstest log)")
        return
    counts = "  ".join(f"{v} {summary['counts'][v]}" for v in VERDICTS)
    extra = " (stopped at the timeout)" if summary.get("stopped") else ""
    print(f"{side}: {summary['total']} cases in {summary['seconds']} s{extra}: {counts}")
    for case, detail in summary["not_ok"].items():
        print(f"  {case:8} {detail['behavior']:13} close {detail['behaviorClose']:13} "
              f"code {detail['remoteCloseCode']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wstest", default=default_wstest(), help="the suite's wstest script")
    parser.add_argument("--side", choices=("server", "client", "both"), default="both")
    parser.add_argument("--cases", nargs="+", default=["*"], help="case ids or patterns")
    parser.add_argument("--exclude", nargs="*", default=EXCLUDED, help="case ids or patterns")
    parser.add_argument("--reports", type=Path, default=ROOT / "build" / "autobahn")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per side")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    args.reports.mkdir(parents=True, exist_ok=True)
    summaries = {}
    if args.side in ("server", "both"):
        summaries["server"] = run_server_side(args.wstest, args.cases, args.exclude, args.reports,
                                              args.timeout)
    if args.side in ("client", "both"):
        summaries["client"] = run_client_side(args.wstest, args.cases, args.exclude, args.reports,
                                              args.timeout)
    (args.reports / "summary.json").write_text(json.dumps(summaries, indent=2), encoding="utf-8")
    for side, summary in summaries.items():
        print_summary(side, summary)
    print(f"reports: {args.reports}")
    failed = any(s.get("missing") or s["counts"].get("FAILED") for s in summaries.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
