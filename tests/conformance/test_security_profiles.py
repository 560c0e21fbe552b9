"""The kit playing a station logs in as security profiles 1 and 2 say: a password, a CA."""
from __future__ import annotations

from pathlib import Path

import trustme
from targets import FAST, new_station_id

from ocpp_sync.conformance import CsmsUnderTest, run
from ocpp_sync.conformance.case import FAILED, PASSED
from ocpp_sync.security import server_ssl_context
from ocpp_sync.testing import running_csms


def _password_is_secret(station_id: str, password: str | None, certificate: object,
                        headers: object) -> bool:
    return password == "secret"


def test_the_kit_station_logs_in_with_its_password() -> None:
    with running_csms(("2.0.1",), authenticate=_password_is_secret) as csms:
        url = f"ws://127.0.0.1:{csms.port}/ocpp"
        right = run(CsmsUnderTest(url, new_station_id(), password="secret"), "TC_B_01_CSMS",
                    config=FAST)
        wrong = run(CsmsUnderTest(url, new_station_id(), password="guess"), "TC_B_01_CSMS",
                    config=FAST)
    assert right.verdicts[0].outcome == PASSED, right.text()
    verdict = wrong.verdicts[0]
    assert (verdict.outcome, verdict.step) == (FAILED, "boot")
    assert "401" in verdict.message


def test_the_kit_station_verifies_a_tls_csms_with_the_ca_given(tmp_path: Path) -> None:
    ca, other = trustme.CA(), trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key, ca_file, other_file = (tmp_path / n for n in ("s.pem", "s.key", "ca.pem", "o.pem"))
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    ca_file.write_bytes(ca.cert_pem.bytes())
    other_file.write_bytes(other.cert_pem.bytes())
    with running_csms(("2.0.1",), ssl_context=server_ssl_context(cert, key)) as csms:
        url = f"wss://127.0.0.1:{csms.port}/ocpp"
        trusted = run(CsmsUnderTest(url, new_station_id(), ca_file=str(ca_file)),
                      "TC_B_01_CSMS", config=FAST)
        untrusted = run(CsmsUnderTest(url, new_station_id(), ca_file=str(other_file)),
                        "TC_B_01_CSMS", config=FAST)
    assert trusted.verdicts[0].outcome == PASSED, trusted.text()
    assert untrusted.verdicts[0].outcome == FAILED
    assert "certificate" in untrusted.verdicts[0].message.lower()
