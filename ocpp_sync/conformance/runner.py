"""Run cases against a target: one verdict per case, whatever the peer does.

The runner opens the target's session (the kit's CSMS listens for the whole
run; the kit's station connects afresh for each case), plays each case with
its own context and turns how it ended into a :class:`Verdict`. A case that
does not apply to the target's version or role is not run.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ocpp_sync.conformance.case import ERROR, FAILED, INCONCLUSIVE, PASSED, Case, Verdict, select
from ocpp_sync.conformance.config import Config
from ocpp_sync.conformance.context import Context
from ocpp_sync.conformance.prompts import Prompt, no_prompt
from ocpp_sync.conformance.report import Report
from ocpp_sync.conformance.sides import CsmsUnderTest, StationUnderTest
from ocpp_sync.errors import CaseFailed, CaseInconclusive, ConnectionClosed, HandshakeError

__all__ = ["run", "run_case", "cases_for"]

log = logging.getLogger("ocpp_sync.conformance")

Target = CsmsUnderTest | StationUnderTest


def cases_for(target: Target, pattern: str | Iterable[str] = "*", *,
              block: str | None = None) -> list[Case]:
    """The cases matching ``pattern`` (and ``block``) that apply to the target's role and version."""
    return select(pattern, role=target.role, version=target.version, block=block)


def run(target: Target, cases: str | Iterable[str] | Iterable[Case] = "*", *,
        config: Config | None = None, prompt: Prompt = no_prompt,
        on_verdict: Callable[[Verdict], Any] | None = None,
        on_ready: Callable[[int | None], Any] | None = None, block: str | None = None) -> Report:
    """Play ``cases`` (a glob of ids, ids, or Case objects) against ``target``; the report.

    Args:
        target: A CsmsUnderTest or a StationUnderTest.
        cases: Which cases: ``"TC_B_*"``, ``"TC_B_01_CSMS,TC_E_*"``, or a list.
        config: Ids, tokens and timeouts; the defaults otherwise.
        prompt: ``prompt(key, text)`` for what a person must do (a console or input()
            prompt, or a ScriptedPrompt); without one such cases are inconclusive.
        on_verdict: Called with each verdict as soon as it is known (a progress line).
        on_ready: Called before the first case with the port the kit's CSMS listens on
            (station under test; None for a CSMS under test): when to start the station.
        block: Only the cases of this 2.0.1 block letter (``"B"``).
    """
    config = config or Config()
    chosen = _resolve(target, cases, block)
    where = target.url if isinstance(target, CsmsUnderTest) else f"port {target.port}"
    report = Report(f"{target.role} under test at {where}, station {target.station_id}, "
                    f"OCPP {target.version}")
    with target.session(config) as session:
        port = session.port if isinstance(target, StationUnderTest) else None
        if isinstance(target, StationUnderTest) and target.port == 0:
            report.target = report.target.replace("port 0", f"port {port}")
        if on_ready is not None:
            on_ready(port)
        for case in chosen:
            verdict = run_case(case, target, config, prompt, session)
            report.verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
    return report


def _resolve(target: Target, cases: str | Iterable[str] | Iterable[Case],
             block: str | None) -> list[Case]:
    if isinstance(cases, str):
        return cases_for(target, cases, block=block)
    ids = [c.id if isinstance(c, Case) else str(c) for c in cases]
    return cases_for(target, ids, block=block)


def run_case(case: Case, target: Target, config: Config, prompt: Prompt, session: Any) -> Verdict:
    """Play one case in ``session`` (the target's); never raises for what the peer does."""
    version = target.version
    started = time.monotonic()
    verdict = Verdict(case.id, case.title, case.role, version, PASSED)
    missing = [need for need in case.needs if need not in config.provides]
    if missing:
        verdict.outcome = INCONCLUSIVE
        verdict.message = f"the target is not configured for: {', '.join(missing)}"
        return verdict
    side = session.side()
    context = Context(case, version, config, prompt, side, target.station_id)
    try:
        case.play(context)
    except CaseFailed as exc:
        verdict.outcome = FAILED
        verdict.message = exc.description
        verdict.frame, verdict.field = exc.frame, exc.field
        verdict.expected, verdict.got = _shown(exc.expected), _shown(exc.got)
    except CaseInconclusive as exc:
        verdict.outcome = INCONCLUSIVE
        verdict.message = exc.description
    except (ConnectionClosed, HandshakeError) as exc:
        verdict.outcome = FAILED
        verdict.message = f"the connection failed: {type(exc).__name__}: {exc}"
    except Exception as exc:
        log.exception("%s: the case broke", case.id)
        verdict.outcome = ERROR
        verdict.message = f"{type(exc).__name__}: {exc}"
    finally:
        verdict.step = context.current_step if verdict.outcome != PASSED else None
        try:
            verdict.frames = context.frames()
        finally:
            side.close()
    verdict.seconds = time.monotonic() - started
    return verdict


def _shown(value: Any) -> Any:
    """JSON-ready: plain values as they are, a Matcher or the absent marker as their repr."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return repr(value)
