"""The scenario language of ``ocpp-sync station --scenario``: a JSON (or YAML) list of steps.

A scenario is checked whole before anything is sent, so a typo is found up
front; then :func:`run_scenario` plays it step by step, carrying out the
CSMS's commands between steps.
"""
from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ocpp_sync.errors import OCPPError
from ocpp_sync.sim.common import is_16, wire_value
from ocpp_sync.sim.station import StationSimulator

__all__ = ["ScenarioError", "Step", "StepResult", "STEPS", "check_connectors", "load_scenario",
           "parse_scenario", "run_scenario"]


class ScenarioError(ValueError):
    """A scenario file that cannot be played: unreadable, not a list of steps, or a bad step."""


# Step name -> {argument: allowed types}; every argument is optional.
STEPS: dict[str, dict[str, tuple[type, ...]]] = {
    "boot": {},
    "heartbeat": {},
    "status": {"connector": (int,), "status": (str,)},
    "authorize": {"id_tag": (str,)},
    "start": {"connector": (int,), "id_tag": (str,)},
    "meter": {"connector": (int,), "samples": (int,), "interval": (int, float)},
    "stop": {"connector": (int,), "reason": (str,)},
    "wait": {"seconds": (int, float)},
    "expect": {"action": (str,), "timeout": (int, float)},
}
REQUIRED = {"status": ("status",), "expect": ("action",), "wait": ("seconds",)}
# A step whose non-essential message the CSMS refused: the station goes on, so does the scenario.
REFUSED = "refused by the CSMS (CALLERROR), going on"


@attrs.frozen
class Step:
    name: str
    args: dict[str, Any]

    def describe(self) -> str:
        return " ".join([self.name, *(f"{k}={v}" for k, v in self.args.items())])


@attrs.frozen
class StepResult:
    number: int
    total: int
    step: Step
    ok: bool
    result: str
    seconds: float


def parse_scenario(data: Any) -> list[Step]:
    """Check a decoded scenario (a list of one-key objects) and turn it into steps."""
    if isinstance(data, dict) and "steps" in data:
        data = data["steps"]
    if not isinstance(data, list) or not data:
        raise ScenarioError("a scenario is a non-empty list of steps (or {\"steps\": [...]})")
    steps = []
    for number, item in enumerate(data, 1):
        where = f"step {number}"
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise ScenarioError(f"{where}: expected an object with one key, the step name, got {item!r}")
        (name, args), = item.items()
        if name not in STEPS:
            raise ScenarioError(f"{where}: unknown step {name!r}{_did_you_mean(name, STEPS)} "
                                f"(known: {', '.join(STEPS)})")
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise ScenarioError(f"{where} ({name}): arguments must be an object, got {args!r}")
        for key, value in args.items():
            allowed = STEPS[name].get(key)
            if allowed is None:
                raise ScenarioError(f"{where} ({name}): unknown argument {key!r}"
                                    f"{_did_you_mean(str(key), STEPS[name])} "
                                    f"(known: {', '.join(STEPS[name]) or 'none'})")
            if isinstance(value, bool) or not isinstance(value, allowed):
                raise ScenarioError(f"{where} ({name}): {key} must be "
                                    f"{' or '.join(t.__name__ for t in allowed)}, got {value!r}")
        for key in REQUIRED.get(name, ()):
            if key not in args:
                raise ScenarioError(f"{where} ({name}): {key!r} is required")
        steps.append(Step(name, dict(args)))
    return steps


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    """``, did you mean 'x'?`` for a near miss (a typo), else nothing."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f", did you mean {close[0]!r}?" if close else ""


def check_connectors(steps: list[Step], connectors: int) -> None:
    """A step naming a connector the station lacks is a mistake in the file, found up front."""
    for number, step in enumerate(steps, 1):
        connector = step.args.get("connector", 1)
        if not 1 <= connector <= connectors:
            raise ScenarioError(f"step {number} ({step.name}): connector {connector}, but the "
                                f"station has {connectors} (see --connectors)")


def load_scenario(path: str) -> list[Step]:
    """Read a JSON scenario (YAML too when PyYAML is installed)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise ScenarioError(f"{path}: YAML scenarios need PyYAML, which is not installed: "
                                "pip install pyyaml (or write the scenario as JSON)") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, "
                                f"column {exc.colno}") from None
    try:
        return parse_scenario(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


# 1.6 command names and their 2.x counterparts, so a scenario names either.
_ALIASES = {"RemoteStopTransaction": "RequestStopTransaction",
            "RemoteStartTransaction": "RequestStartTransaction",
            "ChangeConfiguration": "SetVariables", "GetConfiguration": "GetVariables"}


def run_scenario(sim: StationSimulator, steps: list[Step],
                 progress: Callable[[StepResult], None] | None = None) -> bool:
    """Play ``steps`` in order, obeying CSMS commands between them; False at the first failure.

    Commands the CSMS sends during the scenario are carried out between steps
    (a remote stop ends the transaction), so an ``expect`` step sees their effect.
    """
    seen = 0  # how far into sim.received the expect steps have consumed
    for number, step in enumerate(steps, 1):
        started = time.monotonic()
        try:
            result, seen = _play(sim, step, seen)
            ok = True
        except (OCPPError, ConnectionError, TimeoutError, ValueError) as exc:
            result, ok = f"{type(exc).__name__}: {exc}", False
        if ok:
            sim.carry_out_pending()
        if progress is not None:
            progress(StepResult(number, len(steps), step, ok, result, time.monotonic() - started))
        if not ok:
            return False
    return True


def _play(sim: StationSimulator, step: Step, seen: int) -> tuple[str, int]:
    """Carry out one step; what happened, and the new expect position."""
    args = step.args
    connector = int(args.get("connector", 1))
    if step.name == "boot":
        response = sim.boot()
        return f"{wire_value(response.status)}, heartbeat every {response.interval} s", seen
    if step.name == "heartbeat":
        return "ok" if sim.heartbeat() is not None else REFUSED, seen
    if step.name == "status":
        answered = sim.status(args["status"], connector) is not None
        return f"connector {connector} {args['status']}" + ("" if answered else f", {REFUSED}"), seen
    if step.name == "authorize":
        tag = args.get("id_tag", sim.id_tags[0])
        if not sim.authorize(tag):
            raise ValueError(f"tag {tag} not authorized")
        return f"{tag} accepted", seen
    if step.name == "start":
        tag = args.get("id_tag", sim.id_tags[(connector - 1) % len(sim.id_tags)])
        transaction_id = sim.start_transaction(tag, connector)
        return f"transaction {transaction_id}", seen
    if step.name == "meter":
        state = sim.connector(connector)
        samples, sent = int(args.get("samples", 1)), 0
        interval = float(args.get("interval", sim.meter_interval))
        refused, powers = 0, []
        for _ in range(samples):
            if sim.charging_for(interval, connector) is not None:
                break
            powers.append(sim.power_now(connector))
            refused += sim.meter_values(connector) is None
            sent += 1
        stopped = "" if state.transaction_id is not None or sent == samples else ", transaction ended"
        refusals = f", {refused} {REFUSED}" if refused else ""
        rates = f" at {'/'.join(f'{p:g}' for p in dict.fromkeys(powers))} W" if powers else ""
        return f"{sent} sample(s), {state.meter_wh} Wh{rates}{stopped}{refusals}", seen
    if step.name == "stop":
        if sim.connector(connector).transaction_id is None:
            raise ValueError(f"connector {connector} has no transaction to stop")
        sim.stop_transaction(args.get("reason", "Local"), connector)
        return f"connector {connector} stopped", seen
    if step.name == "wait":
        deadline = time.monotonic() + float(args["seconds"])
        while (left := deadline - time.monotonic()) > 0:
            command = sim.wait_for_command(left)
            if command is not None:
                sim.carry_out(command, charge=False)
        return "ok", seen
    action = args["action"]
    names = {action} if is_16(sim.version) else {action, _ALIASES.get(action, action)}
    timeout = float(args.get("timeout", 10))
    index = sim.wait_for_request(names, seen, timeout)
    if index is None:
        raise TimeoutError(f"no {action} from the CSMS within {timeout:g} s")
    return f"{sim.received[index]} received", index + 1
