"""The simulated station's stack: its configuration and its charging profiles, from :mod:`ocpp_sync.station`.

A 1.6 station keeps a :class:`~ocpp_sync.station.ConfigurationStore`, a 2.x one
a :class:`~ocpp_sync.station.DeviceModel`; both keep a
:class:`~ocpp_sync.station.smart.SmartCharging` whose composite schedule caps
the power the simulator charges at. The stack answers the CSMS's configuration,
device model and smart charging requests; the simulator reads its settings
from it and tells it when transactions start and end.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocpp_sync.station import (
    Attribute,
    Change,
    Characteristics,
    ComponentId,
    ConfigurationStore,
    DeviceModel,
    DeviceModelHandlers,
    KeyDefinition,
    Reporter,
    VariableId,
)
from ocpp_sync.station.keys16 import REMOTE_TRIGGER, SMART_CHARGING, STRING
from ocpp_sync.station.profiles import ProfileStore
from ocpp_sync.station.smart import SmartCharging

__all__ = ["SimulatedStack", "SETTINGS_2X"]

MODEL = "Simulator"
VENDOR = "ocpp_sync"

#: Where a 2.x station keeps each setting the simulator acts on, named by its 1.6 key.
SETTINGS_2X: dict[str, tuple[str, str]] = {
    "HeartbeatInterval": ("OCPPCommCtrlr", "HeartbeatInterval"),
    "MeterValueSampleInterval": ("SampledDataCtrlr", "TxUpdatedInterval"),
}
_RATE_UNITS_16 = {"Current": "A", "Power": "W"}


def _fixed(data_type: str, value: str) -> tuple[Characteristics, list[Attribute]]:
    return Characteristics(data_type), [Attribute("Actual", value, "ReadOnly", constant=True)]


class SimulatedStack:
    """The stores of one simulated station and the handlers that answer from them.

    ``connectors`` EVSEs (1.6 connectors) of one connector each; ``sample_seconds``
    starts the sample interval; ``power_w`` is what a connector draws where no
    profile limits it, ``voltage`` and ``phases`` convert a limit in A to W.
    ``on_heartbeat_interval(seconds)`` runs when the CSMS changes the heartbeat
    interval (in the connection's worker: it should only hand the change on).
    The 2.x reports are sent by one reporter thread named ``reporter_name``,
    started at the first report.
    """

    def __init__(self, version: str, *, connectors: int, sample_seconds: int, power_w: float,
                 voltage: float, phases: int, on_heartbeat_interval: Callable[[int], None],
                 reporter_name: str) -> None:
        self.version = version
        self.reporter = Reporter(reporter_name)
        self._on_heartbeat_interval = on_heartbeat_interval
        self.configuration: ConfigurationStore | None = None
        self.model: DeviceModel | None = None
        self.device_model: DeviceModelHandlers | None = None
        if version == "1.6":
            profiles = self._configure_16(connectors, sample_seconds)
        else:
            profiles = self._configure_2x(connectors, sample_seconds, power_w)
        self.smart = SmartCharging(profiles, max_current=power_w / (voltage * phases), voltage=voltage,
                                   phases=phases, reporter=self.reporter)
        if self.model is not None:
            self._bind_2x(connectors, power_w)

    def _configure_16(self, connectors: int, sample_seconds: int) -> ProfileStore:
        store = ConfigurationStore(
            [SMART_CHARGING, REMOTE_TRIGGER],
            values={"HeartbeatInterval": 300, "MeterValueSampleInterval": sample_seconds,
                    "NumberOfConnectors": connectors, "AuthorizeRemoteTxRequests": False},
            keys=[KeyDefinition("Model", STRING, "Vendor", False, readonly=True, default=MODEL)])
        store.on_change("HeartbeatInterval", lambda key, _value: self._on_heartbeat_interval(store.int_value(key)))
        self.configuration = store
        return ProfileStore(
            "1.6", evse_count=connectors, max_stack_level=store.int_value("ChargeProfileMaxStackLevel"),
            max_periods=store.int_value("ChargingScheduleMaxPeriods"),
            max_profiles=store.int_value("MaxChargingProfilesInstalled"),
            rate_units=[_RATE_UNITS_16[unit] for unit in store.list_value("ChargingScheduleAllowedChargingRateUnit")])

    def _configure_2x(self, connectors: int, sample_seconds: int, power_w: float) -> ProfileStore:
        model = DeviceModel.standard(self.version, evses=connectors, values={
            SETTINGS_2X["MeterValueSampleInterval"]: str(sample_seconds),
            ("AuthCtrlr", "AuthorizeRemoteStart"): "false"})
        model.add("ChargingStation", "Model", *_fixed("string", MODEL))
        model.add("ChargingStation", "VendorName", *_fixed("string", VENDOR))
        model.add("EVSE", "Count", *_fixed("integer", str(connectors)))
        for evse in range(1, connectors + 1):
            model.set(ComponentId("EVSE", evse_id=evse), "Power", str(power_w), "MaxSet")
        handlers = DeviceModelHandlers(model, reporter=self.reporter)
        handlers.on_change(self._changed)
        self.model, self.device_model = model, handlers
        rate_units = model.value("SmartChargingCtrlr", "RateUnit") or "A"
        return ProfileStore(
            self.version, evse_count=connectors,
            max_stack_level=model.int_value("SmartChargingCtrlr", "ProfileStackLevel", 8),
            max_periods=model.int_value("SmartChargingCtrlr", "PeriodsPerSchedule", 24),
            rate_units=rate_units.split(","))

    def _bind_2x(self, connectors: int, power_w: float) -> None:
        """The device model reads what smart charging knows: the profiles installed, each EVSE's power."""
        assert self.model is not None
        self.model.bind("SmartChargingCtrlr", VariableId("Entries", "ChargingProfiles"),
                        lambda: str(len(self.smart.store.entries())))
        for evse in range(1, connectors + 1):
            self.model.bind(ComponentId("EVSE", evse_id=evse), "Power", self._power_reader(evse, power_w))

    def _power_reader(self, evse: int, power_w: float) -> Callable[[], str]:
        """EVSE ``evse``'s Power: what it charges at during a transaction, else 0."""
        def read() -> str:
            return f"{self.power_w(evse, power_w) if evse in self.smart.transactions() else 0:g}"
        return read

    def _changed(self, change: Change) -> None:
        if (change.component.name, change.variable.name) == SETTINGS_2X["HeartbeatInterval"] \
                and change.attribute == "Actual":
            self._on_heartbeat_interval(int(change.new))

    def attach(self, cp: Any) -> None:
        """Answer the configuration (1.6) or device model (2.x) and smart charging requests of ``cp``.

        Local authorization and reservations, once the station stack has them, attach here too.
        """
        if self.configuration is not None:
            self.configuration.attach(cp)
        if self.device_model is not None:
            self.device_model.attach(cp)
        self.smart.attach(cp)

    def stop(self, timeout: float) -> None:
        """Send the reports still queued (waiting at most ``timeout`` s), then end the reporter thread."""
        self.reporter.stop(timeout)

    # -- what the simulator reads and tells ------------------------------------------------------

    def setting(self, key: str) -> str | None:
        """A setting by its 1.6 key: the 1.6 store's text, or (2.x) the value of its :data:`SETTINGS_2X` variable."""
        if self.configuration is not None:
            return self.configuration.text(key) if key in self.configuration else None
        place = SETTINGS_2X.get(key)
        if place is None or self.model is None:
            return None
        return self.model.value(*place)

    def booted(self, interval: int) -> None:
        """The boot answer set the heartbeat interval: the store reports it from now on."""
        if interval < 1:
            return
        if self.configuration is not None:
            self.configuration.set("HeartbeatInterval", interval)
        elif self.model is not None:
            self.model.set(*SETTINGS_2X["HeartbeatInterval"], str(interval))

    def power_w(self, connector: int, most: float) -> float:
        """The power ``connector`` charges at now: ``most``, capped by its composite schedule."""
        return min(most, self.smart.limit_now(connector, "W"))

    def transaction_started(self, connector: int, transaction_id: Any) -> None:
        self.smart.start_transaction(connector, str(transaction_id))

    def transaction_ended(self, transaction_id: Any) -> None:
        self.smart.end_transaction(str(transaction_id))
