"""One CSMS cluster node for tests/test_cluster.py: a CSMS plus a Cluster, driven over stdin.

Usage: cluster_node.py REDIS_URL NODE_ID LIVENESS PRESENCE_TTL PREFIX
Prints {"port": N} once listening, then answers one JSON line per command line.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

import ocpp_sync
from ocpp_sync import v16, v201
from ocpp_sync.cluster import Cluster

VERSIONS = {"1.6": v16, "2.0.1": v201}


def outcome(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "code": getattr(exc, "code", ""), "message": str(exc)}


def main() -> None:
    redis_url, node_id, liveness, ttl, prefix = sys.argv[1:6]
    csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), timeout=10)
    cluster = Cluster(redis_url, csms=csms, node_id=node_id, prefix=prefix,
                      liveness=float(liveness), presence_ttl=float(ttl), publish_events=True)
    gone: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def left(station: Any) -> None:
        with lock:
            gone.setdefault(station.id, threading.Event()).set()

    for m in VERSIONS.values():
        @cluster.on(m.BootNotificationRequest)
        def boot(station: Any, request: Any, m: Any = m) -> Any:
            return m.BootNotificationResponse(current_time=datetime.now(timezone.utc),
                                              interval=300, status="Accepted")

    cluster.start()
    csms.on_disconnect(left)  # after the cluster's own callback: runs once it released
    csms.start("127.0.0.1", 0)
    print(json.dumps({"port": csms.port}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command["cmd"]
        if cmd == "quit":
            break
        if cmd == "send":
            m = VERSIONS[command.get("version", "1.6")]
            started = time.monotonic()
            try:
                response = cluster.send(command["station"], m.DataTransferRequest(
                    vendor_id="test", data=command.get("data", "")), timeout=command["timeout"])
                answer: dict[str, Any] = {"data": response.data, "status": response.status}
            except Exception as exc:  # the test asserts on the kind
                answer = outcome(exc)
            answer["elapsed"] = time.monotonic() - started
        elif cmd == "wait_gone":
            with lock:
                event = gone.setdefault(command["station"], threading.Event())
            answer = {"gone": event.wait(command["timeout"])}
        elif cmd == "local":
            answer = {"stations": sorted(csms.stations)}
        else:
            answer = {"error": "unknown command"}
        print(json.dumps(answer), flush=True)
    cluster.close()
    csms.stop()


if __name__ == "__main__":
    main()
