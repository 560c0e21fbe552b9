"""Each example central system and charge point, run as is against each other."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.background import ENV, Background

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
WAIT = 60.0


def example_process(name: str, *args: str) -> Background:
    return Background([sys.executable, str(EXAMPLES / name), *args], wait=WAIT, cwd=EXAMPLES.parent)


@pytest.mark.parametrize("central_system, charge_point, station_says, csms_says", [
    ("central_system_v16.py", "charge_point_v16.py",
     [r"boot: Accepted", r"transaction 1 started", r"transaction 1 stopped \(Remote\)"],
     [r"CP_1: booted \(ACME X1\)", r"CP_1: remote stop of transaction 1: Accepted",
      r"CP_1: transaction 1 ended at \d+ Wh", r"CP_1: connector 1 is Available"]),
    ("central_system_v201.py", "charge_point_v201.py",
     [r"boot: Accepted", r"token TOKEN-001: Accepted", r"ended \(remote stop\)"],
     [r"CS_1: booted \(ACME X2, reason PowerUp\)", r"CS_1: HeartbeatInterval is 300 \(Accepted\)",
      r"CS_1: remote stop of \S+: Accepted", r"CS_1: transaction \S+ Ended"]),
], ids=["1.6", "2.0.1"])
def test_example_pair_runs_against_each_other(central_system: str, charge_point: str,
                                              station_says: list[str],
                                              csms_says: list[str]) -> None:
    csms = example_process(central_system, "--port", "0")
    try:
        port = csms.expect(r"listening on ws://127\.0\.0\.1:(\d+)/").group(1)
        station = subprocess.run([sys.executable, str(EXAMPLES / charge_point), "--port", port],
                                 capture_output=True, text=True, timeout=WAIT, env=ENV)
        assert station.returncode == 0, station.stdout + station.stderr
        for pattern in station_says:
            assert re.search(pattern, station.stdout), (pattern, station.stdout)
        csms.expect(r"remote stop of .*: Accepted")  # printed once the station has answered
        # Ctrl-C stops the central system cleanly.
        csms.process.send_signal(signal.SIGINT)
        assert csms.wait() == 0
    finally:
        csms.kill()
    for pattern in csms_says:
        assert re.search(pattern, csms.text, re.MULTILINE), (pattern, csms.text)
    assert csms.text.rstrip().endswith("CSMS stopped")
    assert "Traceback" not in csms.text
