"""UTC date-times ("...Z") are read on every supported Python, 3.10 included.

Python 3.10's ``datetime.fromisoformat`` takes neither ``Z`` nor a fraction of
other than 3 or 6 digits, so the fast path hands it a rewritten string there.
The tests run that 3.10 rewrite on whatever interpreter runs the suite, and the
interpreter's own path too, against the general conversion.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable

import pytest

from ocpp_sync import from_payload, v16
from ocpp_sync.protocol import datetimes as codec

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FRACTIONS = ["", ".5", ".12", ".123", ".1234", ".123456", ".1234567", ".123456789"]


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_a_heartbeat_answer_in_utc_is_read(fraction: str) -> None:
    """What `ocpp-sync demo` failed on under 3.10: a CSMS's currentTime ends in Z."""
    msg = from_payload(v16.HeartbeatResponse, {"currentTime": f"2024-01-31T23:59:59{fraction}Z"})
    micro = int(fraction[1:7].ljust(6, "0")) if fraction else 0
    assert msg.current_time == _dt.datetime(2024, 1, 31, 23, 59, 59, micro, _dt.timezone.utc)


@pytest.fixture(params=["interpreter", "3.10 rewrite"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], _dt.datetime]:
    if request.param == "3.10 rewrite":
        monkeypatch.setattr(codec, "_fromisoformat_z", codec._fromisoformat_310)
    return codec.parse_datetime


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # the patch holds for all examples
@given(st.datetimes(min_value=_dt.datetime(1, 1, 2), max_value=_dt.datetime(9998, 12, 31)),
       st.sampled_from(FRACTIONS))
def test_the_fast_path_reads_what_the_general_one_reads(
        fast_path: Callable[[str], _dt.datetime], value: _dt.datetime, fraction: str) -> None:
    text = value.replace(microsecond=0).isoformat() + fraction + "Z"
    fast, general = fast_path(text), codec.parse_datetime(text.replace("T", "t"))
    assert fast == general and fast.tzinfo is general.tzinfo is _dt.timezone.utc
