"""Test cases keyed to the OCTT ids, their registry, and the verdict a run gives each.

A :class:`Case` is data (id, title, versions, role under test, requirement
ids, configuration needs, the steps it walks through) plus the function that
plays it against a :class:`~ocpp_sync.conformance.context.Context`. The
registry holds every case the modules of :mod:`ocpp_sync.conformance.cases`
define, by id.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocpp_sync.conformance.context import Context

__all__ = ["Case", "CSMS_ROLE", "STATION_ROLE", "ROLES", "case", "register", "get", "all_cases",
           "select", "PASSED", "FAILED", "INCONCLUSIVE", "ERROR", "Verdict"]

#: The role under test: the kit plays the other one.
CSMS_ROLE = "csms"
STATION_ROLE = "station"
ROLES = (CSMS_ROLE, STATION_ROLE)

PASSED = "passed"
FAILED = "failed"
INCONCLUSIVE = "inconclusive"
ERROR = "error"

# TC_B_01_CS, TC_E_04_CSMS (2.0.1: block letter), TC_001_CS, TC_004_1_CSMS (1.6: no block),
# KIT_J_01_CSMS (the kit's own OCPP-J checks, which have no OCTT id).
_ID = re.compile(r"^(TC|KIT)_(?:([A-Z])_)?\d{2,3}(?:_\d+)?_(CS|CSMS)$")
_CASE_MODULES = ("v16_core", "v16_station_lists", "v201_b_csms", "v201_e_csms", "v201_f_csms",
                 "v201_station", "v201_d_station", "v201_k_station", "kit_rpc")


@dataclass(frozen=True)
class Case:
    """One test case.

    Args:
        id: The OCTT id (``TC_B_01_CSMS``, ``TC_001_CS``), or ``KIT_...`` for the kit's own.
        title: What it checks, in a line.
        versions: The OCPP versions it applies to.
        role: The role under test: ``"csms"`` (the kit plays a station) or ``"station"``.
        steps: The names of its steps, in order; a verdict names the one that failed.
        play: ``play(context)``: plays the case, raising CaseFailed or CaseInconclusive.
        requirements: The requirement ids it covers, where known (``B01.FR.02``).
        use_cases: The use case ids of the specification (``B01``).
        needs: Configuration the target must have (keys of ``Config.provides``); missing
            ones make the verdict inconclusive before anything is sent.
    """

    id: str
    title: str
    versions: tuple[str, ...]
    role: str
    steps: tuple[str, ...]
    play: Callable[[Context], None] = dataclasses.field(repr=False, compare=False)
    requirements: tuple[str, ...] = ()
    use_cases: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        match = _ID.match(self.id)
        if match is None:
            raise ValueError(f"{self.id!r} is not a test case id like TC_B_01_CSMS or TC_001_CS")
        if self.role not in ROLES:
            raise ValueError(f"{self.id}: role must be one of {ROLES}, not {self.role!r}")
        if (match.group(3) == "CSMS") != (self.role == CSMS_ROLE):
            raise ValueError(f"{self.id}: the id's suffix does not match the role {self.role!r}")
        if not self.steps:
            raise ValueError(f"{self.id}: a case needs at least one step")

    @property
    def block(self) -> str:
        """The 2.0.1 functional block letter (``"B"``), ``"J"`` for the kit's own, or ``""`` (1.6)."""
        match = _ID.match(self.id)
        assert match is not None
        return match.group(2) or ""


_REGISTRY: dict[str, Case] = {}


def register(new: Case) -> Case:
    """Add a case to the registry; ValueError if its id is taken."""
    if new.id in _REGISTRY:
        raise ValueError(f"a test case {new.id} is registered already")
    _REGISTRY[new.id] = new
    return new


def case(id: str, title: str, *, versions: Iterable[str], role: str, steps: Iterable[str],
         requirements: Iterable[str] = (), use_cases: Iterable[str] = (),
         needs: Iterable[str] = ()) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Decorator: register the decorated ``play(context)`` as the case ``id`` (see :class:`Case`)."""
    def define(play: Callable[[Context], None]) -> Callable[[Context], None]:
        register(Case(id, title, tuple(versions), role, tuple(steps), play, tuple(requirements),
                      tuple(use_cases), tuple(needs)))
        return play
    return define


def _load() -> None:
    for name in _CASE_MODULES:
        importlib.import_module(f"ocpp_sync.conformance.cases.{name}")


def all_cases() -> list[Case]:
    """Every registered case, sorted by id."""
    _load()
    return [_REGISTRY[key] for key in sorted(_REGISTRY)]


def get(case_id: str) -> Case:
    """The case with this id; KeyError if there is none."""
    _load()
    try:
        return _REGISTRY[case_id]
    except KeyError:
        raise KeyError(f"no test case {case_id!r}") from None


def select(pattern: str | Iterable[str] = "*", *, role: str | None = None,
           version: str | None = None, block: str | None = None) -> list[Case]:
    """The cases whose id matches ``pattern`` (a glob, or several, comma-separated or a list)
    and the role under test, the OCPP version and the block letter when given."""
    patterns = [p.strip() for p in pattern.split(",")] if isinstance(pattern, str) else list(pattern)
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    return [c for c in all_cases()
            if any(fnmatch.fnmatchcase(c.id, p) for p in patterns if p)
            and (role is None or c.role == role)
            and (version is None or version in c.versions)
            and (block is None or c.block == block.upper())]


@dataclass
class Verdict:
    """How one case went: ``outcome`` is passed, failed, inconclusive or error.

    On failure ``step`` names the step, ``frame`` the frame (action, message id,
    direction, type), ``field`` the JSON path in its payload, and ``expected``
    and ``got`` the two values. ``frames`` are the frames of the case, JSON-ready.
    """

    case_id: str
    title: str
    role: str
    version: str
    outcome: str
    message: str = ""
    step: str | None = None
    frame: dict[str, Any] | None = None
    field: str | None = None
    expected: Any = None
    got: Any = None
    seconds: float = 0.0
    frames: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome == PASSED

    def describe(self) -> str:
        """The verdict in a few lines: what failed where, the frame, the field, expected vs got."""
        lines = [f"{self.case_id} ({self.version}): {self.outcome}"]
        if self.step is not None:
            lines.append(f"  step: {self.step}")
        if self.message:
            lines.append(f"  {self.message}")
        if self.frame is not None:
            frame = self.frame
            lines.append(f"  frame: {frame.get('type')} {frame.get('action')} "
                         f"id={frame.get('message_id')} ({frame.get('direction')})")
        if self.field is not None:
            lines.append(f"  field: {self.field}: expected {self.expected!r}, got {self.got!r}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, the frames included."""
        return {"case": self.case_id, "title": self.title, "role": self.role,
                "version": self.version, "outcome": self.outcome, "message": self.message,
                "step": self.step, "frame": self.frame, "field": self.field,
                "expected": self.expected, "got": self.got, "seconds": round(self.seconds, 3),
                "frames": self.frames}
