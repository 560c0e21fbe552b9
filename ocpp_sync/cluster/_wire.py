"""Redis key names, the atomic scripts, and how calls and errors travel as stream fields.

One Redis database may hold several clusters: every key starts with the
cluster's prefix. The scripts build key names from the prefix, which is fine
for a single Redis server (or a replicated pair) but not for Redis Cluster.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ocpp_sync.errors import (
    CallError,
    CallTimeout,
    ClusterUnavailable,
    ConnectionClosed,
    OCPPError,
    StationNotConnected,
    ValidationError,
)

SEP = "\t"


def quick_retry() -> Retry:
    """Retry briefly: enough to replace a pooled connection that a Redis restart
    dropped, short enough that an outage shows as ClusterUnavailable at once."""
    return Retry(ExponentialBackoff(cap=0.1, base=0.01), 2)


# Refresh a claim we hold, or take the entry back if it vanished (Redis was
# restarted or flushed) or was left by this node's earlier self (a crashed
# process restarted under the same id); never take over another node's claim.
# ARGV: our value, TTL in ms, our node id followed by the separator.
REFRESH = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if (not v) or string.sub(v, 1, string.len(ARGV[3])) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""

# Remove a claim only if it is still ours: the station may have reconnected
# to another node (or to this one, on a new connection) meanwhile.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Look the station up, check its node is alive and its OCPP version matches,
# and queue the call on the node's stream, all in one round trip.
# Replies: {0} not claimed; {1, v} owner dead (entry removed); {2, v, id} queued;
# {3, v} version mismatch.
ROUTE = """
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local sep = string.find(v, '\\t', 1, true)
local node = string.sub(v, 1, sep - 1)
if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 0 then
  redis.call('DEL', KEYS[1])
  return {1, v}
end
local rest = string.sub(v, sep + 1)
local version = string.sub(rest, string.find(rest, '\\t', 1, true) + 1)
if version ~= ARGV[3] then return {3, v} end
local id = redis.call('XADD', ARGV[1] .. ':calls:' .. node, 'MAXLEN', '~', ARGV[2], '*',
                      unpack(ARGV, 4))
return {2, v, id}
"""


class Keys:
    """Every key one cluster uses, under its prefix."""

    def __init__(self, prefix: str) -> None:
        if not prefix or SEP in prefix:
            raise ValueError(f"bad key prefix {prefix!r}")
        self.prefix = prefix
        self.events = f"{prefix}:events"

    def station(self, station_id: str) -> str:
        return f"{self.prefix}:station:{station_id}"

    def station_pattern(self) -> str:
        return f"{self.prefix}:station:*"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    def node_pattern(self) -> str:
        return f"{self.prefix}:node:*"

    def calls(self, node_id: str) -> str:
        return f"{self.prefix}:calls:{node_id}"

    def replies(self, client_id: str) -> str:
        return f"{self.prefix}:replies:{client_id}"


def text(value: Any) -> str:
    """Redis answers bytes unless the client decodes; accept both."""
    return value.decode() if isinstance(value, bytes) else str(value)


def fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The (id, fields) pairs of an XREAD/XREADGROUP reply, over every stream in it.

    A pending entry that was trimmed away comes back with no fields.
    """
    return [(text(entry_id), fields(raw or {}))
            for _, entries in reply or [] for entry_id, raw in entries]


def presence_value(node_id: str, token: str, version: str) -> str:
    return SEP.join((node_id, token, version))


def parse_presence(value: Any) -> tuple[str, str, str]:
    """(node id, connection token, OCPP version) from a presence entry."""
    node_id, token, version = text(value).split(SEP)
    return node_id, token, version


def ms_of(stream_id: Any) -> int:
    """The Redis clock (ms) at which a stream entry was added."""
    return int(text(stream_id).split("-", 1)[0])


def error_fields(exc: BaseException) -> dict[str, str]:
    """An exception as reply fields, so the caller can raise the same kind."""
    if isinstance(exc, (StationNotConnected, ConnectionClosed)):
        kind = "StationNotConnected"
    elif isinstance(exc, CallTimeout):
        kind = "CallTimeout"
    elif isinstance(exc, CallError):
        kind = "CallError"
    elif isinstance(exc, ValidationError):
        kind = "ValidationError"
    elif isinstance(exc, OCPPError):
        kind = "OCPPError"
    else:
        return {"ok": "0", "error": "OCPPError", "code": "InternalError",
                "description": f"{type(exc).__name__}: {exc}", "details": "{}"}
    out = {"ok": "0", "error": kind, "code": exc.code, "description": exc.description,
           "details": json.dumps(exc.details or {}, default=str)}
    if isinstance(exc, ValidationError):
        out["path"] = exc.path
        out["message"] = exc.message
    return out


def error_from(data: Mapping[str, str]) -> OCPPError:
    """The exception that reply fields describe."""
    kind = data.get("error", "OCPPError")
    code = data.get("code", "InternalError")
    description = data.get("description", "")
    try:
        details = json.loads(data.get("details") or "{}")
    except ValueError:
        details = {}
    if kind == "StationNotConnected":
        return StationNotConnected(description)
    if kind == "CallTimeout":
        return CallTimeout(description)
    if kind == "CallError":
        return CallError(code, description, details)
    if kind == "ValidationError":
        return ValidationError(code, data.get("path", ""), data.get("message", description))
    if kind == "ClusterUnavailable":
        return ClusterUnavailable(description)
    return OCPPError(description, code=code, details=details)


def payload_json(payload: Mapping[str, Any] | None) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
