"""The 1.6 configuration store without sockets: the key table, value validation, the answers,
callbacks and persistence."""
from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_sync.errors import OCPPError
from ocpp_sync.station.configuration import (
    ACCEPTED,
    NOT_SUPPORTED,
    REBOOT_REQUIRED,
    REJECTED,
    ConfigurationStore,
    canonical,
    parse,
)
from ocpp_sync.station.keys16 import (
    BOOL,
    CSL,
    FEATURE_PROFILES,
    INT,
    MEASURANDS,
    PHASES,
    PROFILES,
    STANDARD_KEYS,
    STRING,
    KeyDefinition,
)

SECRET = "s3cret-0123456789abcdef"
EVERY_PROFILE = PROFILES


def full_store(**options: Any) -> ConfigurationStore:
    optional = [d.name for d in STANDARD_KEYS.values() if not d.required]
    return ConfigurationStore(EVERY_PROFILE, optional=optional, **options)


# -- the table ----------------------------------------------------------------------------------


def test_the_table_has_every_key_of_section_9_and_the_whitepaper() -> None:
    by_profile: dict[str, int] = {}
    for definition in STANDARD_KEYS.values():
        by_profile[definition.profile] = by_profile.get(definition.profile, 0) + 1
    assert by_profile == {"Core": 34, "LocalAuthListManagement": 3, "Reservation": 1, "SmartCharging": 5,
                          "Security": 6}
    optional_core = {d.name for d in STANDARD_KEYS.values() if d.profile == "Core" and not d.required}
    assert optional_core == {
        "AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled", "BlinkRepeat", "ConnectorPhaseRotationMaxLength",
        "LightIntensity", "MaxEnergyOnInvalidId", "MeterValuesAlignedDataMaxLength",
        "MeterValuesSampledDataMaxLength", "MinimumStatusDuration", "StopTxnAlignedDataMaxLength",
        "StopTxnSampledDataMaxLength", "SupportedFeatureProfilesMaxLength", "WebSocketPingInterval"}
    assert not any(d.required for d in STANDARD_KEYS.values() if d.profile == "Security")
    assert [d.name for d in STANDARD_KEYS.values() if d.profile == "SmartCharging" and not d.required] == [
        "ConnectorSwitch3to1PhaseSupported"]
    readonly = {d.name for d in STANDARD_KEYS.values() if d.readonly}
    assert {"GetConfigurationMaxKeys", "NumberOfConnectors", "SupportedFeatureProfiles",
            "ChargeProfileMaxStackLevel", "LocalAuthListMaxLength", "CertificateStoreMaxLength"} <= readonly
    assert not {"HeartbeatInterval", "MeterValuesSampledData", "SecurityProfile", "CpoName"} & readonly
    assert [d.name for d in STANDARD_KEYS.values() if d.write_only] == ["AuthorizationKey"]


def test_every_default_is_a_value_its_key_takes() -> None:
    for definition in STANDARD_KEYS.values():
        if definition.name == "AuthorizationKey":
            continue  # no password until the application or the CSMS sets one
        assert canonical(definition, definition.default) == definition.default, definition.name


def test_the_meter_lists_take_measurands_with_or_without_a_phase() -> None:
    sampled = STANDARD_KEYS["MeterValuesSampledData"]
    assert canonical(sampled, "Voltage.L1-N, Current.Import.L2,SoC") == "Voltage.L1-N,Current.Import.L2,SoC"
    for wrong in ("Voltage.L4", "Volts", "Energy.Active.Import", "SoC,", ",SoC", "SoC,,RPM"):
        with pytest.raises(ValueError):
            canonical(sampled, wrong)
    assert len(MEASURANDS) == 22 and len(PHASES) == 10


def test_phase_rotation_is_a_connector_and_a_rotation() -> None:
    rotation = STANDARD_KEYS["ConnectorPhaseRotation"]
    assert canonical(rotation, "0.RST, 1.RST, 2.RTS") == "0.RST,1.RST,2.RTS"
    assert canonical(rotation, "1.NotApplicable") == "1.NotApplicable"
    for wrong in ("RST", "1.RSS", "x.RST", "1.RST.2"):
        with pytest.raises(ValueError):
            canonical(rotation, wrong)


# -- validation, for many inputs -----------------------------------------------------------------

RANGED = KeyDefinition("Ranged", INT, "Vendor", False, minimum=-5, maximum=900)
FLAG = KeyDefinition("Flag", BOOL, "Vendor", False)
COLOURS = ("red", "green", "blue")
LIST = KeyDefinition("Colours", CSL, "Vendor", False, members=frozenset(COLOURS))
NAME = KeyDefinition("Name", STRING, "Vendor", False, min_length=2, max_length=8)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="+-0123456789 x٣", max_size=12) | st.text(max_size=4))
def test_an_int_is_a_decimal_number_in_range(text: str) -> None:
    stripped = text[1:] if text[:1] in "+-" else text
    valid = stripped.isascii() and stripped.isdigit() and len(stripped) <= 10 and -5 <= int(text) <= 900
    try:
        result = canonical(RANGED, text)
    except ValueError:
        assert not valid
    else:
        assert valid and result == str(int(text)) and parse(RANGED, result) == int(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-10**12, max_value=10**12))
def test_an_int_without_bounds_is_a_32_bit_integer(number: int) -> None:
    unbounded = KeyDefinition("Count", INT, "Vendor", False)
    if -2**31 <= number < 2**31:
        assert canonical(unbounded, str(number)) == str(number)
    else:
        with pytest.raises(ValueError):
            canonical(unbounded, str(number))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="truefalsTRUEFALS x", max_size=6))
def test_a_bool_is_true_or_false_in_any_case(text: str) -> None:
    if text.lower() in ("true", "false"):
        assert canonical(FLAG, text) == text.lower() and parse(FLAG, text.lower()) is (text.lower() == "true")
    else:
        with pytest.raises(ValueError):
            canonical(FLAG, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(COLOURS + ("pink", ""))), st.sampled_from([",", ", ", " ,"]),
       st.integers(min_value=0, max_value=4))
def test_a_list_takes_allowed_members_up_to_its_count(members: list[str], separator: str, limit: int) -> None:
    text = separator.join(members)
    valid = (not members or all(m in COLOURS for m in members)) and len(members) <= limit
    if members == [""]:
        valid = True  # an empty text is the empty list
    try:
        result = canonical(LIST, text, limit)
    except ValueError:
        assert not valid
    else:
        assert valid and parse(LIST, result) == [m for m in members if m]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600))
def test_a_string_has_its_length_and_no_value_is_over_500(text: str) -> None:
    if 2 <= len(text) <= 8:
        assert canonical(NAME, text) == text
    else:
        with pytest.raises(ValueError):
            canonical(NAME, text)
    wide = KeyDefinition("Wide", STRING, "Vendor", False, max_length=10_000)
    if len(text) > 500:
        with pytest.raises(ValueError):
            canonical(wide, text)


def test_a_refused_value_is_never_quoted() -> None:
    with pytest.raises(ValueError) as refused:
        canonical(STANDARD_KEYS["AuthorizationKey"], "short-secret")
    assert "short-secret" not in str(refused.value)


# -- building a store ---------------------------------------------------------------------------


def test_a_store_has_the_required_keys_of_its_profiles_and_the_optional_ones_named() -> None:
    core = ConfigurationStore()
    assert {d.name for d in core.definitions()} == {d.name for d in STANDARD_KEYS.values()
                                                    if d.profile == "Core" and d.required}
    assert core.text("SupportedFeatureProfiles") == "Core"
    store = ConfigurationStore(["SmartCharging", "Reservation", "RemoteTrigger"],
                               optional=["ReserveConnectorZeroSupported"], values={"BlinkRepeat": 5})
    assert "ChargeProfileMaxStackLevel" in store and "LocalAuthListEnabled" not in store
    assert "ReserveConnectorZeroSupported" in store and "AuthorizationCacheEnabled" not in store
    assert store.int_value("BlinkRepeat") == 5
    assert store.list_value("SupportedFeatureProfiles") == ["Core", "Reservation", "SmartCharging", "RemoteTrigger"]
    assert full_store().list_value("SupportedFeatureProfiles") == list(FEATURE_PROFILES)


def test_initial_values_take_python_values_and_are_checked() -> None:
    store = ConfigurationStore(values={"NumberOfConnectors": 3, "StopTransactionOnInvalidId": False,
                                       "MeterValuesSampledData": ["Voltage", "SoC"]})
    assert store.text("StopTransactionOnInvalidId") == "false"
    assert store.text("MeterValuesSampledData") == "Voltage,SoC"
    assert store.text("ConnectorPhaseRotation") == "1.Unknown,2.Unknown,3.Unknown"
    with pytest.raises(ValueError):
        ConfigurationStore(values={"HeartbeatInterval": "soon"})
    with pytest.raises(ValueError):
        ConfigurationStore(values={"MeterValuesSampledData": "SoC,RPM", "MeterValuesSampledDataMaxLength": 1})
    with pytest.raises(ValueError):
        ConfigurationStore(["Core", "Billing"])
    with pytest.raises(ValueError):
        ConfigurationStore(optional=["ReserveConnectorZeroSupported"])  # Reservation is not selected
    with pytest.raises(ValueError):
        ConfigurationStore(values={"NoSuchKey": "1"})


def test_the_application_adds_keys_and_redefines_standard_ones() -> None:
    vendor = KeyDefinition("VendorDisplayText", STRING, "Vendor", False, default="Welcome")
    strict = KeyDefinition("AuthorizeRemoteTxRequests", BOOL, "Core", True, readonly=True, default="false")
    store = ConfigurationStore(keys=[vendor, strict])
    assert store.definitions()[-1] == vendor
    assert store.text("VendorDisplayText") == "Welcome"
    assert store.change("AuthorizeRemoteTxRequests", "true") == REJECTED
    with pytest.raises(ValueError):
        ConfigurationStore(keys=[KeyDefinition("Odd", "float", "Vendor", False)])
    with pytest.raises(ValueError):
        ConfigurationStore(keys=[KeyDefinition("K" * 51, STRING, "Vendor", False)])


# -- GetConfiguration ------------------------------------------------------------------------------


def test_get_without_keys_is_every_key_but_the_write_only_one() -> None:
    store = full_store(values={"AuthorizationKey": SECRET})
    known, unknown = store.get()
    assert [s.key for s in known] == [d.name for d in store.definitions() if d.name != "AuthorizationKey"]
    assert unknown == [] and SECRET not in repr(known)
    assert store.get([]) == (known, [])
    heartbeat = next(s for s in known if s.key == "HeartbeatInterval")
    assert (heartbeat.readonly, heartbeat.value) == (False, "300")


def test_get_with_keys_answers_those_and_lists_the_unknown_ones() -> None:
    store = full_store(values={"AuthorizationKey": SECRET})
    known, unknown = store.get(["NumberOfConnectors", "Nope", "HeartbeatInterval", "AuthorizationKey", "Nope"])
    assert [(s.key, s.readonly, s.value) for s in known] == [("NumberOfConnectors", True, "1"),
                                                             ("HeartbeatInterval", False, "300")]
    assert unknown == ["Nope", "AuthorizationKey"]


def test_more_keys_than_get_configuration_max_keys_are_refused() -> None:
    store = ConfigurationStore(values={"GetConfigurationMaxKeys": 2})
    assert len(store.get(["HeartbeatInterval", "ResetRetries", "HeartbeatInterval"])[0]) == 2
    with pytest.raises(OCPPError) as refused:
        store.get(["HeartbeatInterval", "ResetRetries", "NumberOfConnectors"])
    assert refused.value.code == "OccurrenceConstraintViolation"
    assert len(store.get()[0]) > 2  # every key, whatever the limit


# -- ChangeConfiguration -------------------------------------------------------------------------


def test_change_answers_each_status() -> None:
    reboot = KeyDefinition("ModemBand", INT, "Vendor", False, reboot_required=True, default="3")
    store = full_store(keys=[reboot])
    assert store.change("NoSuchKey", "1") == NOT_SUPPORTED
    assert store.change("NumberOfConnectors", "4") == REJECTED
    assert store.change("HeartbeatInterval", "-1") == REJECTED
    assert store.change("LightIntensity", "101") == REJECTED
    assert store.change("HeartbeatInterval", "+0120") == ACCEPTED
    assert store.value("HeartbeatInterval") == 120 and store.text("HeartbeatInterval") == "120"
    assert store.change("StopTransactionOnInvalidId", "FALSE") == ACCEPTED
    assert store.value("StopTransactionOnInvalidId") is False
    assert store.change("ModemBand", "7") == REBOOT_REQUIRED and store.value("ModemBand") == 7
    assert store.change("MeterValuesSampledData", "SoC, Voltage.L1") == ACCEPTED
    assert store.get(["MeterValuesSampledData"])[0][0].value == "SoC,Voltage.L1"


def test_a_list_is_bounded_by_its_max_length_key() -> None:
    store = ConfigurationStore(values={"MeterValuesAlignedDataMaxLength": 2})
    assert store.change("MeterValuesAlignedData", "SoC,RPM") == ACCEPTED
    assert store.change("MeterValuesAlignedData", "SoC,RPM,Voltage") == REJECTED
    assert store.list_value("MeterValuesAlignedData") == ["SoC", "RPM"]


def test_security_profile_only_rises_and_the_application_may_veto() -> None:
    store = ConfigurationStore(["Security"], optional=["SecurityProfile"])
    certificates: list[str] = []
    store.add_check("SecurityProfile", lambda level: level != 3 or bool(certificates))
    assert store.change("SecurityProfile", "2") == ACCEPTED
    assert store.change("SecurityProfile", "1") == REJECTED
    assert store.change("SecurityProfile", "3") == REJECTED  # no certificate yet
    certificates.append("station.pem")
    assert store.change("SecurityProfile", "3") == ACCEPTED and store.int_value("SecurityProfile") == 3
    assert store.change("SecurityProfile", "4") == REJECTED

    def broken(level: object) -> bool:
        raise RuntimeError("the check itself failed")

    other = ConfigurationStore(["Security"], optional=["CpoName"])
    other.add_check("CpoName", broken)
    assert other.change("CpoName", "ACME") == REJECTED and other.text("CpoName") == ""


def test_the_authorization_key_is_written_never_read_nor_logged(caplog: pytest.LogCaptureFixture) -> None:
    store = ConfigurationStore(["Security"], optional=["AuthorizationKey"])
    seen: list[object] = []
    store.on_change("AuthorizationKey", lambda key, value: seen.append(value))
    with caplog.at_level(logging.DEBUG, logger="ocpp_sync"):
        assert store.change("AuthorizationKey", "too-short") == REJECTED
        assert store.change("AuthorizationKey", SECRET) == ACCEPTED
        assert store.change("AuthorizationKey", "x" * 41) == REJECTED
    assert seen == [SECRET] and store.text("AuthorizationKey") == SECRET
    assert store.get(["AuthorizationKey"]) == ([], ["AuthorizationKey"])
    assert SECRET not in caplog.text and "too-short" not in caplog.text and "x" * 41 not in caplog.text


def test_callbacks_run_after_an_accepted_change_and_cannot_break_it(caplog: pytest.LogCaptureFixture) -> None:
    store = ConfigurationStore()
    seen: list[tuple[str, object]] = []

    def broken(key: str, value: object) -> None:
        raise RuntimeError("the application's callback failed")

    store.on_change("HeartbeatInterval", broken)
    store.on_change("HeartbeatInterval", lambda key, value: seen.append((key, value)))
    with caplog.at_level(logging.ERROR, logger="ocpp_sync.station.configuration"):
        assert store.change("HeartbeatInterval", "45") == ACCEPTED
    assert seen == [("HeartbeatInterval", 45)]
    assert "a change callback of HeartbeatInterval failed" in caplog.text
    assert store.change("HeartbeatInterval", "soon") == REJECTED
    store.set("HeartbeatInterval", 50)  # the application's own change: no callback
    assert seen == [("HeartbeatInterval", 45)]
    with pytest.raises(KeyError):
        store.on_change("NoSuchKey", broken)


def test_the_application_sets_read_only_values_but_not_invalid_ones() -> None:
    store = ConfigurationStore()
    store.set("NumberOfConnectors", 2)
    assert store.int_value("NumberOfConnectors") == 2
    with pytest.raises(ValueError):
        store.set("NumberOfConnectors", "two")
    with pytest.raises(KeyError):
        store.set("NoSuchKey", 1)
    with pytest.raises(TypeError):
        store.int_value("LocalPreAuthorize")
    with pytest.raises(TypeError):
        store.bool_value("HeartbeatInterval")
    with pytest.raises(TypeError):
        store.list_value("HeartbeatInterval")
    with pytest.raises(KeyError):
        store.value("NoSuchKey")


def test_concurrent_changes_leave_one_of_the_values() -> None:
    store = ConfigurationStore()
    seen: list[object] = []
    store.on_change("HeartbeatInterval", lambda key, value: seen.append(value))
    answers: list[str] = []

    def changer(base: int) -> None:
        for i in range(50):
            answers.append(store.change("HeartbeatInterval", str(base + i)))

    threads = [threading.Thread(target=changer, args=(base,), name=f"changer-{base}", daemon=True)
               for base in (1000, 2000, 3000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == [ACCEPTED] * 150 and len(seen) == 150
    assert store.int_value("HeartbeatInterval") in {v for v in seen}


# -- persistence ------------------------------------------------------------------------------------


def test_path_saves_every_change_and_a_new_store_loads_it(tmp_path: Path) -> None:
    path = tmp_path / "config16.json"
    options: dict[str, Any] = {"optional": ["AuthorizationKey"], "path": path}
    store = ConfigurationStore(["Security"], values={"NumberOfConnectors": 2}, **options)
    assert not path.exists()  # nothing changed yet
    assert store.change("HeartbeatInterval", "77") == ACCEPTED
    assert store.change("AuthorizationKey", SECRET) == ACCEPTED
    saved = json.loads(path.read_text(encoding="utf-8"))["values"]
    assert saved["HeartbeatInterval"] == "77" and "NumberOfConnectors" not in saved  # read-only: not saved
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["config16.json"]  # no temporary file left
    again = ConfigurationStore(["Security"], values={"NumberOfConnectors": 4}, **options)
    assert again.int_value("HeartbeatInterval") == 77 and again.text("AuthorizationKey") == SECRET
    assert again.int_value("NumberOfConnectors") == 4  # the application's, not the file's


def test_load_skips_what_the_station_does_not_take(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "saved.json"
    path.write_text(json.dumps({"format": "ocpp_sync.configuration16", "version": 1, "values": {
        "HeartbeatInterval": "90", "NumberOfConnectors": "9", "Gone": "1", "ResetRetries": "many"}}),
        encoding="utf-8")
    store = ConfigurationStore()
    with caplog.at_level(logging.WARNING, logger="ocpp_sync.station.configuration"):
        store.load(path)
    assert store.int_value("HeartbeatInterval") == 90
    assert (store.int_value("NumberOfConnectors"), store.int_value("ResetRetries")) == (1, 3)
    assert "Gone" in caplog.text and "many" not in caplog.text
    path.write_text(json.dumps({"values": {}}), encoding="utf-8")
    with pytest.raises(ValueError):
        store.load(path)


def test_a_change_that_cannot_be_saved_is_rejected_and_undone(tmp_path: Path) -> None:
    store = ConfigurationStore(path=tmp_path / "missing-directory" / "config16.json")
    assert store.change("HeartbeatInterval", "10") == REJECTED
    assert store.int_value("HeartbeatInterval") == 300
    with pytest.raises(OSError):
        store.set("HeartbeatInterval", 10)
    assert store.int_value("HeartbeatInterval") == 300


def test_attach_is_for_a_1_6_charge_point() -> None:
    class TwoX:
        version = "2.0.1"

    with pytest.raises(ValueError):
        ConfigurationStore().attach(TwoX())
