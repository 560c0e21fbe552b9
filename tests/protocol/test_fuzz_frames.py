"""Frame-level fuzzing of the incoming-message path, on both sides, over real loopback sockets.

For any text a peer sends: no exception escapes the connection's threads,
every CALL whose id can be read gets an answer with that id, and the
connection keeps working (a probe call sent after it is answered).
"""
from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.raw import RawClient, RawServer

import ocpp_sync
from ocpp_sync.protocol.versions import version_module

pytestmark = pytest.mark.usefixtures("no_leftover_threads")

EXAMPLES = 80
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
message_types = st.sampled_from([2, 3, 4, 5, 6, 0, 7, -1, 2.0, True, "2", None])
ids = st.text(max_size=40) | st.integers() | st.none() | st.just("")


def actions(version: str) -> st.SearchStrategy[str]:
    module = version_module(version)
    return st.sampled_from(sorted(module.REQUESTS)) | st.text(max_size=15)


def frames(version: str) -> st.SearchStrategy[str]:
    """Text that is sometimes a frame, sometimes nearly one, sometimes not JSON at all."""
    as_json = st.builds(json.dumps, st.one_of(
        st.tuples(st.just(2), st.text(min_size=1, max_size=36), actions(version),
                  st.dictionaries(st.text(max_size=12), json_values, max_size=5)).map(list),
        st.tuples(message_types, ids, actions(version), json_values).map(list),
        st.tuples(message_types, ids, json_values).map(list),
        st.tuples(message_types, ids, st.text(max_size=30), st.text(max_size=30), json_values).map(list),
        st.lists(json_values, max_size=6),
        json_values,
    ))
    return as_json | st.text(max_size=60) | st.sampled_from(['[2,"x","Heartbeat",{}', "[]", "[2]", "{}",
                                                              '[2,"x","Heartbeat",{},1]', "NaN",
                                                              '[2,"y","Heartbeat",{"a":1e999}]'])


def _strict_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("not a JSON number")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def readable_call_id(text: str) -> str | None:
    """The id a CALL must be answered with, if the text is strict JSON and a CALL whose id can be read."""
    try:
        data = json.loads(text, parse_constant=_no_constants, parse_float=_strict_float)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, list) and len(data) >= 2 and data[0] == 2 and type(data[0]) is int \
            and isinstance(data[1], str):
        return data[1]
    return None


class Escaped(logging.Handler):
    """Collects every record that carries an exception: something escaped a handler of ours."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.levelno >= logging.ERROR:
            self.records.append(record)


@pytest.fixture
def escaped() -> Iterator[Escaped]:
    handler = Escaped()
    logger = logging.getLogger("ocpp_sync")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def answered_until(receive: Callable[[], list[Any]], probe: str) -> set[str]:
    """Read until the probe's answer; the ids of every answer (CALLRESULT or CALLERROR) seen."""
    seen: set[str] = set()
    while True:
        frame = receive()
        assert isinstance(frame, list) and frame and frame[0] in (3, 4, 5), frame
        seen.add(frame[1])
        if frame[1] == probe:
            assert frame[0] == 3, f"the probe was refused: {frame}"
            return seen


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_csms_survives_any_frame(version: str, escaped: Escaped) -> None:
    m = version_module(version)
    csms = ocpp_sync.CSMS(versions=(version,), timeout=5.0)

    @csms.on(m.HeartbeatRequest)
    def heartbeat(station, request):
        return m.HeartbeatResponse(current_time=datetime.now(timezone.utc))

    csms.start()
    client = RawClient(csms.port, "FUZZ", version)
    try:
        @FUZZ
        @given(text=frames(version))
        def check(text: str) -> None:
            client.send(text)
            probe = str(uuid.uuid4())
            client.send([2, probe, "Heartbeat", {}])
            answered = answered_until(client.receive, probe)
            expected = readable_call_id(text)
            if expected is not None:
                assert expected in answered, f"no answer to {text!r}"

        check()
        assert "FUZZ" in csms.stations and csms.stations["FUZZ"].connected
        assert not escaped.records, [r.getMessage() for r in escaped.records]
    finally:
        client.close()
        csms.stop()


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_charge_point_survives_any_frame(version: str, escaped: Escaped) -> None:
    m = version_module(version)
    server = RawServer(version)
    cp = ocpp_sync.ChargePoint("FUZZCP", server.url, version=version, timeout=5.0, reconnect=False,
                               ping_interval=None)

    @cp.on(m.ClearCacheRequest)
    def clear_cache(request):
        return m.ClearCacheResponse(status="Accepted")

    try:
        cp.connect()
        peer = server.accept()

        @FUZZ
        @given(text=frames(version))
        def check(text: str) -> None:
            peer.send(text)
            probe = str(uuid.uuid4())
            peer.send([2, probe, "ClearCache", {}])
            answered = answered_until(peer.receive, probe)
            expected = readable_call_id(text)
            if expected is not None:
                assert expected in answered, f"no answer to {text!r}"

        check()
        assert cp.connected
        # Our own calls still work after all that: the peer answers a heartbeat by hand.
        pending = cp.send_async(m.HeartbeatRequest())
        call = peer.receive()
        peer.send([3, call[1], {"currentTime": "2026-01-01T00:00:00Z"}])
        assert pending.result(5.0).current_time
        assert not escaped.records, [r.getMessage() for r in escaped.records]
    finally:
        cp.close()
        server.stop()
