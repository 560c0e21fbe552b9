"""The ``ocpp-sync conformance`` command and the notebook call: the kit's front ends.

``ocpp_sync.cli`` only adds the subcommand's arguments (:func:`add_arguments`)
and calls :func:`main`; everything else is here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ocpp_sync.conformance.case import CSMS_ROLE, ROLES, Case, Verdict
from ocpp_sync.conformance.config import Config
from ocpp_sync.conformance.prompts import Prompt, console_prompt, input_prompt
from ocpp_sync.conformance.report import Report
from ocpp_sync.conformance.runner import Target, cases_for, run
from ocpp_sync.conformance.sides import CsmsUnderTest, StationUnderTest

__all__ = ["add_arguments", "main", "load_config", "run_in_notebook"]

#: Where the command finds the station's password when ``--password`` is not given.
PASSWORD_VARIABLE = "OCPP_SYNC_PASSWORD"


def load_config(path: str | os.PathLike[str]) -> Config:
    """A Config from a JSON file, or a TOML one (Python 3.11+); ValueError saying what is wrong."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the configuration {file}: {exc.strerror}") from None
    if file.suffix == ".toml":
        try:
            import tomllib  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise ValueError("TOML configurations need Python 3.11 or later; use JSON") from None
        try:
            values: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{file}: {exc}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{file}: not JSON: {exc}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{file}: the configuration must be a table of keys")
    try:
        return Config.from_mapping(values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{file}: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ocpp-sync conformance``."""
    parser.add_argument("--role", choices=ROLES, required=True,
                        help="what is under test: a csms (the kit connects to --url as a "
                             "station) or a station (the kit listens on --port as its CSMS)")
    parser.add_argument("--url", help="csms: its websocket URL without the station id")
    parser.add_argument("--id", required=True, help="the station id (the kit's, or the charger's)")
    parser.add_argument("--version", choices=("1.6", "2.0.1"), default="2.0.1",
                        help="the OCPP version")
    parser.add_argument("--cases", default="*",
                        help="case ids, globs allowed, comma-separated ('TC_B_*,TC_E_04_CSMS')")
    parser.add_argument("--host", default="0.0.0.0", help="station: the address to listen on")
    parser.add_argument("--port", type=int, default=9000, help="station: the port to listen on")
    parser.add_argument("--password", help="csms: the station's Basic auth password (security "
                                           f"profile 1/2); default: ${PASSWORD_VARIABLE}")
    parser.add_argument("--ca-file", help="csms: the CA (PEM) of a wss:// CSMS's certificate")
    parser.add_argument("--config", help="a JSON (or TOML) file of Config keys: tokens, ids, "
                                         "timeouts, what the target provides")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON (progress goes to stderr)")
    parser.add_argument("--list", action="store_true", help="list the cases chosen and exit")


def _target(args: argparse.Namespace, error: Callable[[str], Any]) -> Target:
    if args.role == CSMS_ROLE:
        if not args.url:
            error("--role csms needs --url")
        password = args.password or os.environ.get(PASSWORD_VARIABLE) or None
        return CsmsUnderTest(args.url, args.id, args.version, password=password,
                             ca_file=args.ca_file)
    return StationUnderTest(args.id, args.version, host=args.host, port=args.port)


def _progress(total: int, stream: Any) -> Callable[[Verdict], None]:
    done = [0]

    def show(verdict: Verdict) -> None:
        done[0] += 1
        detail = f"  {verdict.step}: {verdict.message}" if verdict.outcome != "passed" else ""
        stream.write(f"[{done[0]:>{len(str(total))}}/{total}] {verdict.case_id:<16} {verdict.outcome:<12} "
                     f"({verdict.seconds:.2f} s){detail}\n")
        stream.flush()
    return show


def main(args: argparse.Namespace, error: Callable[[str], Any],
         prompt: Prompt = console_prompt) -> int:
    """Run the command; 0 if nothing failed, 1 if a case failed or broke, 2 for bad input."""
    target = _target(args, error)
    try:
        config = load_config(args.config) if args.config else Config()
    except ValueError as exc:
        sys.stderr.write(f"bad configuration: {exc}\n")
        return 2
    chosen = cases_for(target, args.cases)
    if not chosen:
        print(f"no {args.role} case of OCPP {args.version} matches {args.cases!r}", file=sys.stderr)
        return 2
    if args.list:
        for case in chosen:
            print(f"{case.id:<16} {case.title}")
        return 0
    progress = sys.stderr if args.json else sys.stdout

    def ready(port: int | None) -> None:
        if port is not None:
            print(f"listening on port {port}: connect the station {args.id} to "
                  f"ws://<this host>:{port}/<any path>/{args.id}", file=progress, flush=True)
    report = run(target, chosen, config=config, prompt=prompt,
                 on_verdict=_progress(len(chosen), progress), on_ready=ready)
    print(report.json() if args.json else "\n" + report.text())
    return 0 if report.ok else 1


def run_in_notebook(target: Target, cases: str | Iterable[str] | Iterable[Case] = "*", *,
                    config: Config | None = None, prompt: Prompt = input_prompt) -> Report:
    """For Jupyter: run and return the report (shown as a table); prompts use ``input()``."""
    return run(target, cases, config=config, prompt=prompt)

