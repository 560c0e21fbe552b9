"""The local authorization list: a version number and the identifiers the CSMS installed.

The update rules, checked in this order, nothing changing unless all pass:

- a station with the list disabled (1.6 LocalAuthListEnabled, 2.x LocalAuthListCtrlr
  Enabled) answers NotSupported (1.6) or Failed (2.x, which has no NotSupported);
- a version number not above 0 fails (2.x D01.FR.18; 0 and -1 mean "no list" and
  "not supported" in 1.6 GetLocalListVersion);
- a Differential update whose version is not above the current one is a
  VersionMismatch (1.6 section 5.15, 2.x D01.FR.19); a Full update may set any version;
- more entries in one message than the station takes (1.6 SendLocalListMaxLength,
  2.x ItemsPerMessage), an identifier twice in one message (2.x D01.FR.06), a Full
  entry without its info, or a list that would grow past the maximum (1.6
  LocalAuthListMaxLength, 2.x Entries) fails;
- Full replaces the list (an empty Full update clears it); Differential adds or
  replaces the entries that carry info and removes those that carry none (D01.FR.16/17).

The version afterwards is the one sent (D01.FR.01), except that 1.6 reports 0 for an
empty list (section 5.10). With a ``path`` the list is saved to that JSON file after
every accepted update (written to a temporary file, then renamed over the old one) and
read back at construction.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ocpp_sync.errors import OCPPError
from ocpp_sync.station.tokens import IdToken, TokenInfo

__all__ = ["LocalList", "ListVerdict", "FULL", "DIFFERENTIAL"]

log = logging.getLogger("ocpp_sync.station.locallist")

FULL = "Full"
DIFFERENTIAL = "Differential"

#: One entry of an update: the identifier, and its info (None removes it in a Differential update).
Change = tuple[IdToken, TokenInfo | None]


@attrs.frozen
class ListVerdict:
    """What SendLocalList answers: ``status``, and why (a 2.x reasonCode) when not Accepted."""

    status: str
    reason: str = ""
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"


class LocalList:
    """The local list of one station; thread-safe, every method short.

    ``version`` is "1.6", "2.0.1" or "2.1"; ``enabled`` mirrors LocalAuthListEnabled /
    LocalAuthListCtrlr.Enabled; ``max_entries`` the whole list's bound, ``items_per_message``
    one update's; ``path`` the JSON file the list persists to (None: memory only).
    """

    def __init__(self, version: str, *, enabled: bool = True, max_entries: int = 1000,
                 items_per_message: int = 100, path: str | os.PathLike[str] | None = None) -> None:
        self.version = version
        self.enabled = enabled
        self.max_entries = max_entries
        self.items_per_message = items_per_message
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._version = 0
        self._entries: dict[IdToken, TokenInfo] = {}
        if self.path is not None and self.path.exists():
            self._version, self._entries = _read(self.path)

    @property
    def v16(self) -> bool:
        return self.version == "1.6"

    @property
    def list_version(self) -> int:
        """What GetLocalListVersion answers: -1 (1.6) or 0 (2.x) while the list is disabled."""
        if not self.enabled:
            return -1 if self.v16 else 0
        with self._lock:
            return self._version

    def get(self, token: IdToken) -> TokenInfo | None:
        """The entry of ``token``; None when it has none or the list is disabled."""
        if not self.enabled:
            return None
        with self._lock:
            return self._entries.get(token)

    def entries(self) -> dict[IdToken, TokenInfo]:
        with self._lock:
            return dict(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def update(self, update_type: str, list_version: int, changes: Iterable[Change]) -> ListVerdict:
        """Apply a SendLocalList update (``update_type`` Full or Differential) if the rules allow it."""
        with self._lock:
            verdict, entries = self._checked(update_type, list_version, list(changes))
            if not verdict.accepted:
                return verdict
            version = 0 if self.v16 and not entries else list_version
            if self.path is not None:
                try:
                    _write(self.path, version, entries)
                except OSError as exc:
                    log.error("the local list could not be saved to %s: %s", self.path, exc)
                    return ListVerdict("Failed", "WriteFailed", f"the list could not be saved: {exc}")
            self._version, self._entries = version, entries
        return verdict

    def _checked(self, update_type: str, list_version: int,
                 changes: list[Change]) -> tuple[ListVerdict, dict[IdToken, TokenInfo]]:
        """The verdict and, when Accepted, the list after the update; called under the lock."""
        if not self.enabled:
            return ListVerdict("NotSupported" if self.v16 else "Failed", "Disabled",
                               "the local list is disabled"), {}
        if list_version <= 0:
            return ListVerdict("Failed", "InvalidVersion", "the version number must be above 0"), {}
        if update_type == DIFFERENTIAL and list_version <= self._version:
            return ListVerdict("VersionMismatch", "VersionMismatch",
                               f"version {list_version} is not above {self._version}"), {}
        if len(changes) > self.items_per_message:
            return ListVerdict("Failed", "TooManyItems", f"at most {self.items_per_message} per message"), {}
        if len({token for token, _ in changes}) < len(changes):
            return ListVerdict("Failed", "DuplicateToken", "an identifier appears twice"), {}
        if update_type == FULL:
            if any(info is None for _, info in changes):
                return ListVerdict("Failed", "MissingInfo", "a Full update needs every entry's info"), {}
            entries: dict[IdToken, TokenInfo] = {t: i for t, i in changes if i is not None}
        elif update_type == DIFFERENTIAL:
            entries = dict(self._entries)
            for token, info in changes:
                if info is None:
                    entries.pop(token, None)
                else:
                    entries[token] = info
        else:
            return ListVerdict("Failed", "InvalidUpdateType", f"unknown update type {update_type}"), {}
        if len(entries) > self.max_entries:
            return ListVerdict("Failed", "ListFull", f"at most {self.max_entries} entries"), {}
        return ListVerdict("Accepted"), entries


def _write(path: Path, version: int, entries: dict[IdToken, TokenInfo]) -> None:
    """Write the list next to ``path`` and rename it over ``path``: a crash leaves the old file whole."""
    data = {"version": version,
            "entries": [{"token": t.as_json(), "info": i.as_json()} for t, i in entries.items()]}
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _read(path: Path) -> tuple[int, dict[IdToken, TokenInfo]]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        entries = {IdToken(str(e["token"]["value"]), str(e["token"]["type"])): TokenInfo.from_json(e["info"])
                   for e in data["entries"]}
        return int(data["version"]), entries
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OCPPError(f"the local list file {path} cannot be read: {exc}", code="InternalError") from exc
