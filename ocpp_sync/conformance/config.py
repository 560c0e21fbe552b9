"""What the kit needs to know about the target beyond its address: ids, tags, timeouts."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["Config", "BOOT_PENDING", "BOOT_REJECTED", "REQUIRES_BOOT", "LOCAL_LIST_DISABLED"]

#: ``Config.provides``: the CSMS under test answers this station's first boot Pending.
BOOT_PENDING = "boot_pending"
#: ... answers this station's first boot Rejected.
BOOT_REJECTED = "boot_rejected"
#: ... refuses (CALLERROR SecurityError) a station's calls before its boot is accepted.
REQUIRES_BOOT = "requires_boot"
#: The station under test has no local authorization list, or has it disabled.
LOCAL_LIST_DISABLED = "local_list_disabled"


@dataclass(frozen=True)
class Config:
    """The configuration of a run; :meth:`from_mapping` checks a JSON or TOML table up front.

    Args:
        step_timeout: Seconds each wait of a step may take (an answer, a request, a connection).
        connect_timeout: Seconds the kit playing the CSMS waits for the station to connect.
        evse_id: The EVSE the cases use.
        connector_id: The connector of that EVSE.
        connectors: How many EVSEs the station under test has (each reports its state).
        valid_id_token: A token the CSMS under test accepts (or the station's card).
        valid_id_token_type: Its type (2.x ``idToken.type``).
        heartbeat_interval: The interval the kit playing the CSMS gives in its boot answers.
        vendor: The vendor name the kit playing a station boots with.
        model: The model it boots with.
        boot_retry_wait: The longest wait before booting again after a Pending or Rejected
            answer (the answer's interval, capped by this).
        provides: What the target is configured for, that some cases need
            (:data:`BOOT_PENDING`, :data:`BOOT_REJECTED`, :data:`REQUIRES_BOOT`,
            :data:`LOCAL_LIST_DISABLED`).
    """

    step_timeout: float = 10.0
    connect_timeout: float = 60.0
    evse_id: int = 1
    connector_id: int = 1
    connectors: int = 1
    valid_id_token: str = "VALID-TAG-01"
    valid_id_token_type: str = "ISO14443"
    heartbeat_interval: int = 300
    vendor: str = "ocpp_sync"
    model: str = "conformance-kit"
    boot_retry_wait: float = 2.0
    provides: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("step_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds, got {getattr(self, name)!r}")
        for name in ("evse_id", "connector_id", "connectors"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        if self.boot_retry_wait < 0 or self.heartbeat_interval < 0:
            raise ValueError("boot_retry_wait and heartbeat_interval must not be negative")
        if not self.valid_id_token:
            raise ValueError("valid_id_token must not be empty")
        object.__setattr__(self, "provides", frozenset(self.provides))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """A Config from a parsed JSON or TOML table; ValueError naming an unknown key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        options = dict(values)
        if "provides" in options:
            provides = options["provides"]
            if isinstance(provides, str) or not isinstance(provides, Iterable):
                raise ValueError("provides must be a list of names")
            options["provides"] = frozenset(provides)
        return cls(**options)
