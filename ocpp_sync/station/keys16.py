"""Data: the standard OCPP 1.6 configuration keys, one :class:`KeyDefinition` each.

This module is a table, not logic. The facts (names, types, accessibility,
whether a profile requires the key, ranges and allowed members) are those of
OCPP 1.6 edition 2 section 9 "Standard Configuration Key Names & Values" and of
the "Improved security for OCPP 1.6-J" whitepaper (the ``Security`` rows); the
defaults are this library's choice of sane starting values, which the
application overrides. The spec fixes no key as needing a reboot, so none here
does; an application whose hardware does passes its own definition. Remote
Trigger and Firmware Management define no keys.
"""
from __future__ import annotations

import attrs

__all__ = [
    "BOOL", "INT", "CSL", "STRING",
    "CORE", "LOCAL_AUTH_LIST", "RESERVATION", "SMART_CHARGING", "REMOTE_TRIGGER", "FIRMWARE", "SECURITY",
    "FEATURE_PROFILES", "PROFILES", "KeyDefinition", "STANDARD_KEYS", "MEASURANDS", "PHASES",
    "MAX_VALUE_LENGTH",
]

BOOL = "bool"
INT = "int"
CSL = "CSL"
STRING = "string"

CORE = "Core"
LOCAL_AUTH_LIST = "LocalAuthListManagement"
RESERVATION = "Reservation"
SMART_CHARGING = "SmartCharging"
REMOTE_TRIGGER = "RemoteTrigger"
FIRMWARE = "FirmwareManagement"
#: Not a feature profile: the keys of the 1.6 security whitepaper.
SECURITY = "Security"

#: The six feature profiles, spelled as SupportedFeatureProfiles lists them.
FEATURE_PROFILES = (CORE, FIRMWARE, LOCAL_AUTH_LIST, RESERVATION, SMART_CHARGING, REMOTE_TRIGGER)
PROFILES = FEATURE_PROFILES + (SECURITY,)

#: ``value`` of a KeyValue and of ChangeConfiguration.req: at most this many characters.
MAX_VALUE_LENGTH = 500


@attrs.frozen
class KeyDefinition:
    """What a configuration key is: its type, who may write it, and which values it takes.

    ``kind`` is :data:`BOOL`, :data:`INT`, :data:`CSL` (comma separated list) or
    :data:`STRING`. ``readonly`` keys refuse ChangeConfiguration; ``write_only``
    keys are never reported by GetConfiguration. ``minimum`` / ``maximum`` bound
    an INT. A CSL's members must be in ``members`` or match ``member_pattern``
    (a regular expression, whole member) when either is set, and the list may
    hold at most the value of the key named ``count_key`` items when that key
    is configured. ``min_length`` / ``max_length`` bound a STRING. ``increase_only``
    refuses a lower INT than the current one (SecurityProfile). ``default`` is
    the value a store starts with unless told otherwise; ``unit`` is informative.
    """

    name: str
    kind: str
    profile: str
    required: bool
    readonly: bool = False
    write_only: bool = False
    reboot_required: bool = False
    default: str = ""
    minimum: int | None = None
    maximum: int | None = None
    members: frozenset[str] | None = None
    member_pattern: str | None = None
    count_key: str | None = None
    min_length: int = 0
    max_length: int = MAX_VALUE_LENGTH
    increase_only: bool = False
    unit: str = ""


#: The 1.6 measurands (section 7.31) and phases (section 7.34): members of the meter value lists,
#: each measurand alone or followed by ``.`` and a phase ("Voltage.L1").
MEASURANDS = (
    "Energy.Active.Export.Register", "Energy.Active.Import.Register", "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register", "Energy.Active.Export.Interval", "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval", "Power.Active.Export",
    "Power.Active.Import", "Power.Offered", "Power.Reactive.Export", "Power.Reactive.Import", "Power.Factor",
    "Current.Import", "Current.Export", "Current.Offered", "Voltage", "Frequency", "Temperature", "SoC", "RPM",
)
PHASES = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")
_METER_MEMBERS = frozenset(MEASURANDS) | frozenset(f"{m}.{p}" for m in MEASURANDS for p in PHASES)
_ROTATION_PATTERN = r"[0-9]+\.(NotApplicable|Unknown|RST|RTS|SRT|STR|TRS|TSR)"
_ENERGY = "Energy.Active.Import.Register"


def _meter_list(name: str, default: str) -> KeyDefinition:
    return KeyDefinition(name, CSL, CORE, True, default=default, members=_METER_MEMBERS, count_key=f"{name}MaxLength")


def _max_length(name: str, default: str = "8") -> KeyDefinition:
    return KeyDefinition(name, INT, CORE, False, readonly=True, default=default, minimum=0)


def _seconds(name: str, default: str, required: bool = True) -> KeyDefinition:
    return KeyDefinition(name, INT, CORE, required, default=default, minimum=0, unit="s")


_TABLE = (
    # 9.1 Core
    KeyDefinition("AllowOfflineTxForUnknownId", BOOL, CORE, False, default="false"),
    KeyDefinition("AuthorizationCacheEnabled", BOOL, CORE, False, default="false"),
    # accessibility "R or RW", the charge point's choice: writable here
    KeyDefinition("AuthorizeRemoteTxRequests", BOOL, CORE, True, default="true"),
    KeyDefinition("BlinkRepeat", INT, CORE, False, default="3", minimum=0, unit="times"),
    _seconds("ClockAlignedDataInterval", "0"),
    _seconds("ConnectionTimeOut", "60"),
    KeyDefinition("ConnectorPhaseRotation", CSL, CORE, True, default="1.Unknown", member_pattern=_ROTATION_PATTERN,
         count_key="ConnectorPhaseRotationMaxLength"),
    _max_length("ConnectorPhaseRotationMaxLength"),
    KeyDefinition("GetConfigurationMaxKeys", INT, CORE, True, readonly=True, default="64", minimum=1),
    _seconds("HeartbeatInterval", "300"),
    KeyDefinition("LightIntensity", INT, CORE, False, default="100", minimum=0, maximum=100, unit="%"),
    KeyDefinition("LocalAuthorizeOffline", BOOL, CORE, True, default="true"),
    KeyDefinition("LocalPreAuthorize", BOOL, CORE, True, default="false"),
    KeyDefinition("MaxEnergyOnInvalidId", INT, CORE, False, default="0", minimum=0, unit="Wh"),
    _meter_list("MeterValuesAlignedData", _ENERGY),
    _max_length("MeterValuesAlignedDataMaxLength"),
    _meter_list("MeterValuesSampledData", _ENERGY),
    _max_length("MeterValuesSampledDataMaxLength"),
    _seconds("MeterValueSampleInterval", "60"),
    _seconds("MinimumStatusDuration", "0", required=False),
    KeyDefinition("NumberOfConnectors", INT, CORE, True, readonly=True, default="1", minimum=0),
    KeyDefinition("ResetRetries", INT, CORE, True, default="3", minimum=0, unit="times"),
    KeyDefinition("StopTransactionOnEVSideDisconnect", BOOL, CORE, True, default="true"),
    KeyDefinition("StopTransactionOnInvalidId", BOOL, CORE, True, default="true"),
    _meter_list("StopTxnAlignedData", ""),
    _max_length("StopTxnAlignedDataMaxLength"),
    _meter_list("StopTxnSampledData", ""),
    _max_length("StopTxnSampledDataMaxLength"),
    # the store reports the profiles it was built with
    KeyDefinition("SupportedFeatureProfiles", CSL, CORE, True, readonly=True, default=CORE,
         members=frozenset(FEATURE_PROFILES), count_key="SupportedFeatureProfilesMaxLength"),
    _max_length("SupportedFeatureProfilesMaxLength", "6"),
    KeyDefinition("TransactionMessageAttempts", INT, CORE, True, default="3", minimum=0, unit="times"),
    _seconds("TransactionMessageRetryInterval", "60"),
    KeyDefinition("UnlockConnectorOnEVSideDisconnect", BOOL, CORE, True, default="true"),
    _seconds("WebSocketPingInterval", "0", required=False),
    # 9.2 Local Auth List Management
    KeyDefinition("LocalAuthListEnabled", BOOL, LOCAL_AUTH_LIST, True, default="true"),
    KeyDefinition("LocalAuthListMaxLength", INT, LOCAL_AUTH_LIST, True, readonly=True, default="100", minimum=0),
    KeyDefinition("SendLocalListMaxLength", INT, LOCAL_AUTH_LIST, True, readonly=True, default="100", minimum=0),
    # 9.3 Reservation
    KeyDefinition("ReserveConnectorZeroSupported", BOOL, RESERVATION, False, readonly=True, default="false"),
    # 9.4 Smart Charging (defaults match ProfileStore's)
    KeyDefinition("ChargeProfileMaxStackLevel", INT, SMART_CHARGING, True, readonly=True, default="8", minimum=0),
    KeyDefinition("ChargingScheduleAllowedChargingRateUnit", CSL, SMART_CHARGING, True, readonly=True,
         default="Current,Power", members=frozenset({"Current", "Power"})),
    KeyDefinition("ChargingScheduleMaxPeriods", INT, SMART_CHARGING, True, readonly=True, default="24", minimum=1),
    KeyDefinition("ConnectorSwitch3to1PhaseSupported", BOOL, SMART_CHARGING, False, readonly=True, default="false"),
    KeyDefinition("MaxChargingProfilesInstalled", INT, SMART_CHARGING, True, readonly=True, default="32", minimum=0),
    # The security whitepaper
    KeyDefinition("AdditionalRootCertificateCheck", BOOL, SECURITY, False, readonly=True, default="false"),
    # a password of 16 to 40 characters, never read back
    KeyDefinition("AuthorizationKey", STRING, SECURITY, False, write_only=True, min_length=16, max_length=40),
    KeyDefinition("CertificateSignedMaxChainSize", INT, SECURITY, False, readonly=True, default="10000", minimum=0,
         maximum=10000, unit="characters"),
    KeyDefinition("CertificateStoreMaxLength", INT, SECURITY, False, readonly=True, default="20", minimum=0),
    KeyDefinition("CpoName", STRING, SECURITY, False),
    KeyDefinition("SecurityProfile", INT, SECURITY, False, default="0", minimum=0, maximum=3, increase_only=True),
)

#: Every standard key by name.
STANDARD_KEYS: dict[str, KeyDefinition] = {d.name: d for d in _TABLE}
