"""DATA: the standard components of the 2.x device model and the variables a station keeps.

This module is data, read by :meth:`ocpp_sync.station.DeviceModel.standard`. The
names, data types, mutabilities and units are those of OCPP 2.0.1 Part 2,
Appendices, section 3 (Standardized Components) and of the "Referenced
Components and Variables" of each use case; 2.1 keeps them. Every variable the
appendix marks required is here, with the optional ones most stations use.
The starting values are this library's choices, meant to be overwritten by the
application (``model.set(...)``) or the CSMS.

Each row is one variable. ``kind`` says how it behaves:

- SETTING: ReadWrite, persistent (a configuration value the CSMS may change);
- SECRET: WriteOnly, persistent (a password: set, never read back);
- FIXED: ReadOnly and constant (a capability of the station);
- STATE: ReadOnly, neither persistent nor constant (the station updates it).

``scope`` "station" rows exist once; "evse" rows once per EVSE (component
``EVSE`` with that EVSE id), "connector" rows once per connector.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["SETTING", "SECRET", "FIXED", "STATE", "Row", "STANDARD", "MEASURANDS", "TX_POINTS"]

SETTING = "setting"
SECRET = "secret"
FIXED = "fixed"
STATE = "state"


class Row(NamedTuple):
    """One standard variable; ``attributes`` other than Actual carry their own starting value."""

    scope: str
    component: str
    variable: str
    data_type: str
    kind: str
    value: str | None
    instance: str | None = None
    unit: str | None = None
    values: str = ""
    min_limit: float | None = None
    max_limit: float | None = None
    required: bool = False
    attributes: tuple[tuple[str, str], ...] = ()


#: Marks a valuesList that is the version's MeasurandEnumType.
MEASURANDS = "<measurands>"
#: TxStartPoint / TxStopPoint members (2.0.1 E01).
TX_POINTS = "ParkingBayOccupancy,EVConnected,Authorized,DataSigned,PowerPathClosed,EnergyTransfer"
_AVAILABILITY = "Available,Occupied,Reserved,Unavailable,Faulted"
_ENERGY = "Energy.Active.Import.Register"

S, E, C = "station", "evse", "connector"

STANDARD: tuple[Row, ...] = (
    # OCPPCommCtrlr
    Row(S, "OCPPCommCtrlr", "ActiveNetworkProfile", "integer", STATE, "0"),
    Row(S, "OCPPCommCtrlr", "FileTransferProtocols", "MemberList", FIXED, "HTTPS",
        values="FTP,FTPS,HTTP,HTTPS,SFTP", required=True),
    Row(S, "OCPPCommCtrlr", "HeartbeatInterval", "integer", SETTING, "300", unit="s", min_limit=1),
    Row(S, "OCPPCommCtrlr", "MessageTimeout", "integer", FIXED, "30", instance="Default", unit="s", required=True),
    Row(S, "OCPPCommCtrlr", "MessageAttemptInterval", "integer", SETTING, "60", instance="TransactionEvent",
        unit="s", min_limit=0, required=True),
    Row(S, "OCPPCommCtrlr", "MessageAttempts", "integer", SETTING, "3", instance="TransactionEvent",
        min_limit=0, required=True),
    Row(S, "OCPPCommCtrlr", "NetworkConfigurationPriority", "SequenceList", SETTING, "0", values="0,1,2",
        required=True),
    Row(S, "OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "integer", SETTING, "3", min_limit=0,
        required=True),
    Row(S, "OCPPCommCtrlr", "OfflineThreshold", "integer", SETTING, "300", unit="s", min_limit=0, required=True),
    Row(S, "OCPPCommCtrlr", "PublicKeyWithSignedMeterValue", "OptionList", SETTING, "Never",
        values="Never,OncePerTransaction,EveryMeterValue"),
    Row(S, "OCPPCommCtrlr", "QueueAllMessages", "boolean", SETTING, "false"),
    Row(S, "OCPPCommCtrlr", "ResetRetries", "integer", SETTING, "2", min_limit=0, required=True),
    Row(S, "OCPPCommCtrlr", "RetryBackOffRandomRange", "integer", SETTING, "10", unit="s", min_limit=0,
        required=True),
    Row(S, "OCPPCommCtrlr", "RetryBackOffRepeatTimes", "integer", SETTING, "5", min_limit=0, required=True),
    Row(S, "OCPPCommCtrlr", "RetryBackOffWaitMinimum", "integer", SETTING, "5", unit="s", min_limit=0,
        required=True),
    Row(S, "OCPPCommCtrlr", "UnlockOnEVSideDisconnect", "boolean", SETTING, "true", required=True),
    Row(S, "OCPPCommCtrlr", "WebSocketPingInterval", "integer", SETTING, "30", unit="s", min_limit=0,
        required=True),
    # DeviceDataCtrlr: the limits of GetReport, GetVariables and SetVariables
    Row(S, "DeviceDataCtrlr", "BytesPerMessage", "integer", FIXED, "65000", instance="GetReport", required=True),
    Row(S, "DeviceDataCtrlr", "BytesPerMessage", "integer", FIXED, "65000", instance="GetVariables",
        required=True),
    Row(S, "DeviceDataCtrlr", "BytesPerMessage", "integer", FIXED, "65000", instance="SetVariables",
        required=True),
    Row(S, "DeviceDataCtrlr", "ItemsPerMessage", "integer", FIXED, "50", instance="GetReport", required=True),
    Row(S, "DeviceDataCtrlr", "ItemsPerMessage", "integer", FIXED, "50", instance="GetVariables", required=True),
    Row(S, "DeviceDataCtrlr", "ItemsPerMessage", "integer", FIXED, "50", instance="SetVariables", required=True),
    Row(S, "DeviceDataCtrlr", "ConfigurationValueSize", "integer", FIXED, "1000", max_limit=1000),
    Row(S, "DeviceDataCtrlr", "ReportingValueSize", "integer", FIXED, "2500", max_limit=2500),
    # AuthCtrlr
    Row(S, "AuthCtrlr", "Enabled", "boolean", SETTING, "true"),
    Row(S, "AuthCtrlr", "AuthorizeRemoteStart", "boolean", SETTING, "true", required=True),
    Row(S, "AuthCtrlr", "LocalAuthorizeOffline", "boolean", SETTING, "true", required=True),
    Row(S, "AuthCtrlr", "LocalPreAuthorize", "boolean", SETTING, "false", required=True),
    Row(S, "AuthCtrlr", "OfflineTxForUnknownIdEnabled", "boolean", SETTING, "false"),
    Row(S, "AuthCtrlr", "DisableRemoteAuthorization", "boolean", SETTING, "false"),
    # AuthCacheCtrlr
    Row(S, "AuthCacheCtrlr", "Available", "boolean", FIXED, "true"),
    Row(S, "AuthCacheCtrlr", "Enabled", "boolean", SETTING, "true"),
    Row(S, "AuthCacheCtrlr", "LifeTime", "integer", SETTING, "86400", unit="s", min_limit=0),
    Row(S, "AuthCacheCtrlr", "Policy", "OptionList", SETTING, "LRU", values="LRU,LFU,FIFO,CUSTOM"),
    Row(S, "AuthCacheCtrlr", "Storage", "integer", STATE, "0", unit="B"),
    Row(S, "AuthCacheCtrlr", "DisablePostAuthorize", "boolean", SETTING, "false"),
    # LocalAuthListCtrlr
    Row(S, "LocalAuthListCtrlr", "Available", "boolean", FIXED, "true"),
    Row(S, "LocalAuthListCtrlr", "Enabled", "boolean", SETTING, "true"),
    Row(S, "LocalAuthListCtrlr", "Entries", "integer", STATE, "0", max_limit=1000, required=True),
    Row(S, "LocalAuthListCtrlr", "ItemsPerMessage", "integer", FIXED, "50", required=True),
    Row(S, "LocalAuthListCtrlr", "BytesPerMessage", "integer", FIXED, "65000", required=True),
    Row(S, "LocalAuthListCtrlr", "Storage", "integer", STATE, "0", unit="B"),
    Row(S, "LocalAuthListCtrlr", "DisablePostAuthorize", "boolean", SETTING, "false"),
    # SampledDataCtrlr
    Row(S, "SampledDataCtrlr", "Available", "boolean", FIXED, "true"),
    Row(S, "SampledDataCtrlr", "Enabled", "boolean", SETTING, "true"),
    Row(S, "SampledDataCtrlr", "SignReadings", "boolean", SETTING, "false"),
    Row(S, "SampledDataCtrlr", "TxEndedMeasurands", "MemberList", SETTING, _ENERGY, values=MEASURANDS,
        required=True),
    Row(S, "SampledDataCtrlr", "TxEndedInterval", "integer", SETTING, "0", unit="s", min_limit=0, required=True),
    Row(S, "SampledDataCtrlr", "TxStartedMeasurands", "MemberList", SETTING, _ENERGY, values=MEASURANDS,
        required=True),
    Row(S, "SampledDataCtrlr", "TxUpdatedMeasurands", "MemberList", SETTING, f"{_ENERGY},Power.Active.Import",
        values=MEASURANDS, required=True),
    Row(S, "SampledDataCtrlr", "TxUpdatedInterval", "integer", SETTING, "60", unit="s", min_limit=0,
        required=True),
    Row(S, "SampledDataCtrlr", "RegisterValuesWithoutPhases", "boolean", SETTING, "false"),
    # AlignedDataCtrlr
    Row(S, "AlignedDataCtrlr", "Available", "boolean", FIXED, "true"),
    Row(S, "AlignedDataCtrlr", "Enabled", "boolean", SETTING, "true"),
    Row(S, "AlignedDataCtrlr", "Interval", "integer", SETTING, "900", unit="s", min_limit=0, required=True),
    Row(S, "AlignedDataCtrlr", "Measurands", "MemberList", SETTING, _ENERGY, values=MEASURANDS, required=True),
    Row(S, "AlignedDataCtrlr", "SendDuringIdle", "boolean", SETTING, "false"),
    Row(S, "AlignedDataCtrlr", "SignReadings", "boolean", SETTING, "false"),
    Row(S, "AlignedDataCtrlr", "TxEndedInterval", "integer", SETTING, "0", unit="s", min_limit=0, required=True),
    Row(S, "AlignedDataCtrlr", "TxEndedMeasurands", "MemberList", SETTING, _ENERGY, values=MEASURANDS,
        required=True),
    # TxCtrlr
    Row(S, "TxCtrlr", "EVConnectionTimeOut", "integer", SETTING, "60", unit="s", min_limit=0, required=True),
    Row(S, "TxCtrlr", "MaxEnergyOnInvalidId", "integer", SETTING, "0", unit="Wh", min_limit=0),
    Row(S, "TxCtrlr", "StopTxOnEVSideDisconnect", "boolean", SETTING, "true", required=True),
    Row(S, "TxCtrlr", "StopTxOnInvalidId", "boolean", SETTING, "true", required=True),
    Row(S, "TxCtrlr", "TxBeforeAcceptedEnabled", "boolean", SETTING, "false"),
    Row(S, "TxCtrlr", "TxStartPoint", "MemberList", SETTING, "PowerPathClosed", values=TX_POINTS, required=True),
    Row(S, "TxCtrlr", "TxStopPoint", "MemberList", SETTING, "EVConnected,Authorized", values=TX_POINTS,
        required=True),
    # SecurityCtrlr
    Row(S, "SecurityCtrlr", "BasicAuthPassword", "string", SECRET, None, min_limit=16, max_limit=40),
    Row(S, "SecurityCtrlr", "Identity", "string", SETTING, "", max_limit=48, required=True),
    Row(S, "SecurityCtrlr", "OrganizationName", "string", SETTING, "", required=True),
    Row(S, "SecurityCtrlr", "CertificateEntries", "integer", STATE, "0", required=True),
    Row(S, "SecurityCtrlr", "SecurityProfile", "integer", STATE, "1", min_limit=0, max_limit=3, required=True),
    Row(S, "SecurityCtrlr", "AdditionalRootCertificateCheck", "boolean", FIXED, "false"),
    Row(S, "SecurityCtrlr", "CertSigningWaitMinimum", "integer", SETTING, "60", unit="s", min_limit=0),
    Row(S, "SecurityCtrlr", "CertSigningRepeatTimes", "integer", SETTING, "3", min_limit=0),
    # ChargingStation, each EVSE and each connector
    Row(S, "ChargingStation", "AvailabilityState", "OptionList", STATE, "Available", values=_AVAILABILITY,
        required=True),
    Row(S, "ChargingStation", "Available", "boolean", STATE, "true", required=True),
    Row(S, "ChargingStation", "SupplyPhases", "integer", FIXED, "3", min_limit=0, max_limit=3, required=True),
    Row(S, "ChargingStation", "Problem", "boolean", STATE, "false"),
    Row(E, "EVSE", "AvailabilityState", "OptionList", STATE, "Available", values=_AVAILABILITY, required=True),
    Row(E, "EVSE", "Available", "boolean", STATE, "true", required=True),
    Row(E, "EVSE", "Power", "decimal", STATE, "0", unit="W", required=True, attributes=(("MaxSet", "22000"),)),
    Row(E, "EVSE", "SupplyPhases", "integer", FIXED, "3", min_limit=0, max_limit=3, required=True),
    Row(C, "Connector", "AvailabilityState", "OptionList", STATE, "Available", values=_AVAILABILITY,
        required=True),
    Row(C, "Connector", "Available", "boolean", STATE, "true", required=True),
    Row(C, "Connector", "ConnectorType", "string", FIXED, "cType2", required=True),
    Row(C, "Connector", "SupplyPhases", "integer", FIXED, "3", min_limit=0, max_limit=3, required=True),
    # SmartChargingCtrlr
    Row(S, "SmartChargingCtrlr", "Available", "boolean", FIXED, "true"),
    Row(S, "SmartChargingCtrlr", "Enabled", "boolean", SETTING, "true"),
    Row(S, "SmartChargingCtrlr", "ACPhaseSwitchingSupported", "boolean", FIXED, "false"),
    Row(S, "SmartChargingCtrlr", "Entries", "integer", STATE, "0", instance="ChargingProfiles", required=True),
    Row(S, "SmartChargingCtrlr", "ExternalControlSignalsEnabled", "boolean", SETTING, "false"),
    Row(S, "SmartChargingCtrlr", "LimitChangeSignificance", "decimal", SETTING, "1.0", unit="Percent",
        min_limit=0, required=True),
    Row(S, "SmartChargingCtrlr", "NotifyChargingLimitWithSchedules", "boolean", SETTING, "false"),
    Row(S, "SmartChargingCtrlr", "PeriodsPerSchedule", "integer", FIXED, "24", required=True),
    Row(S, "SmartChargingCtrlr", "Phases3to1", "boolean", FIXED, "false"),
    Row(S, "SmartChargingCtrlr", "ProfileStackLevel", "integer", FIXED, "8", required=True),
    Row(S, "SmartChargingCtrlr", "RateUnit", "MemberList", FIXED, "A,W", values="A,W", required=True),
    # ReservationCtrlr
    Row(S, "ReservationCtrlr", "Available", "boolean", FIXED, "true"),
    Row(S, "ReservationCtrlr", "Enabled", "boolean", SETTING, "true"),
    Row(S, "ReservationCtrlr", "NonEvseSpecific", "boolean", FIXED, "false"),
    # ClockCtrlr
    Row(S, "ClockCtrlr", "DateTime", "dateTime", STATE, None, required=True),
    Row(S, "ClockCtrlr", "NtpSource", "OptionList", SETTING, "DHCP", values="DHCP,manual"),
    Row(S, "ClockCtrlr", "NtpServerUri", "string", SETTING, ""),
    Row(S, "ClockCtrlr", "TimeOffset", "string", SETTING, "+00:00"),
    Row(S, "ClockCtrlr", "TimeSource", "SequenceList", SETTING, "Heartbeat",
        values="Heartbeat,NTP,GPS,RealTimeClock,MobileNetwork,RadioTimeTransmitter", required=True),
    Row(S, "ClockCtrlr", "TimeZone", "string", SETTING, ""),
    Row(S, "ClockCtrlr", "TimeAdjustmentReportingThreshold", "integer", SETTING, "20", unit="s", min_limit=0),
)
