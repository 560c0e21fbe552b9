"""The fleet's plan: which stations, speaking which version, doing what, from when.

Everything random about a run is drawn here, from one seed, before any process
starts: the same options and seed give the same stations, connect times and mix,
so a run that found a problem can be played again.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from ocpp_sync.protocol.versions import VERSIONS

__all__ = ["FleetOptions", "StationPlan", "plan_fleet", "share_out", "MIX"]

#: ``--version mix``: every station draws one of these.
MIX = "mix"


@attrs.frozen
class FleetOptions:
    """What a fleet run was asked for; picklable, so each worker process gets a copy.

    Attributes:
        url: The CSMS's websocket URL without the station id.
        stations: How many stations.
        version: An OCPP version, or ``"mix"`` to draw one per station.
        procs: Worker processes the stations are spread over.
        ramp: Connects per second across the whole fleet (stations arrive one by one).
        duration: Seconds the run lasts from the first connect; None: until Ctrl-C.
        seed: The seed every random choice of the plan comes from.
        id_prefix: Station ids are this prefix and a five-digit number.
        heartbeat_interval: Seconds between Heartbeats; None: what the boot answer says.
        status_interval: Seconds between repeated StatusNotifications; None: only on changes.
        charging: The share of built-in stations that run transactions (0 to 1).
        meter_interval: Seconds between meter values in a transaction.
        samples: Meter values per transaction.
        idle: Mean seconds a charging station waits before its next transaction.
        connectors: Connectors per station (the built-in mix charges on the first; a
            scenario may use them all).
        scenarios: Scenario files (as ``ocpp-sync station --scenario`` takes) to play.
        scenario_share: The share of stations that play one of ``scenarios``.
        password: Basic auth password for every station; ``{id}`` in it becomes the id.
        cafile: A CA bundle that verifies a ``wss://`` CSMS.
        timeout: Seconds a call may wait for its answer.
        reconnect_wait: The first wait before a lost station reconnects, doubling per attempt
            plus up to as much at random (as ``ocpp-sync station --reconnect-wait``).
        report_interval: Seconds between a worker's figures sent to the parent.
    """

    url: str
    stations: int
    version: str = "1.6"
    procs: int = 1
    ramp: float = 50.0
    duration: float | None = None
    seed: int = 0
    id_prefix: str = "FLEET"
    heartbeat_interval: float | None = None
    status_interval: float | None = None
    charging: float = 0.5
    meter_interval: float = 10.0
    samples: int = 6
    idle: float = 30.0
    connectors: int = 1
    scenarios: tuple[str, ...] = ()
    scenario_share: float = 1.0
    password: str | None = attrs.field(default=None, repr=False)  # never in a log line
    cafile: str | None = None
    timeout: float = 30.0
    reconnect_wait: float = 5.0
    report_interval: float = 0.5


@attrs.frozen
class StationPlan:
    """One station's part: its id, version, when it connects and what it does once booted.

    ``scenario`` is the index of the scenario file it plays (None: the built-in
    mix); ``charges`` says whether the built-in mix runs transactions;
    ``phase`` (0 to 1) spreads the station's periodic messages over their interval;
    ``seed`` drives the station's own random waits.
    """

    index: int
    id: str
    version: str
    connect_at: float
    scenario: int | None
    charges: bool
    phase: float
    seed: int


def plan_fleet(options: FleetOptions) -> list[StationPlan]:
    """Every station of the run, in connect order; the same for the same options."""
    rng = random.Random(options.seed)
    plans = []
    for index in range(options.stations):
        version = rng.choice(VERSIONS) if options.version == MIX else options.version
        scenario = None
        if options.scenarios and rng.random() < options.scenario_share:
            scenario = rng.randrange(len(options.scenarios))
        plans.append(StationPlan(
            index=index, id=f"{options.id_prefix}{index:05d}", version=version,
            connect_at=index / options.ramp, scenario=scenario,
            charges=scenario is None and rng.random() < options.charging,
            phase=rng.random(), seed=rng.getrandbits(32)))
    return plans


def share_out(plans: Sequence[StationPlan], procs: int) -> list[list[StationPlan]]:
    """Deal the stations round-robin, so every process connects at the same fleet-wide pace."""
    return [list(plans[number::procs]) for number in range(procs)]
