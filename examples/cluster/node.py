"""One CSMS node of a cluster: accepts stations, and serves calls routed to them.

    python node.py --id node-a --port 9001 [--redis redis://127.0.0.1:6379/0]

Run as many as you like, each with its own id and port (and machine). Every
request a station sends is also published to the cluster's event stream
(see ``backoffice.py events``). Stop it with Ctrl-C or SIGTERM.
"""
import argparse
import logging
import signal
import sys
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import v16
from ocpp_sync.cluster import Cluster


def now():
    return datetime.now(timezone.utc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", required=True, help="this node's id, unique in the cluster")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.id} %(message)s")

    csms = ocpp_sync.CSMS(versions=("1.6",))
    # Handlers registered through the cluster also publish what they receive.
    cluster = Cluster(args.redis, csms=csms, node_id=args.id, publish_events=True,
                      liveness=5, presence_ttl=15)

    @cluster.on(v16.BootNotificationRequest)
    def on_boot(station, request):
        return v16.BootNotificationResponse(current_time=now(), interval=10,
                                            status=v16.RegistrationStatus.ACCEPTED)

    @cluster.on(v16.HeartbeatRequest)
    def on_heartbeat(station, request):
        return v16.HeartbeatResponse(current_time=now())

    @cluster.on(v16.StatusNotificationRequest)
    def on_status(station, request):
        return v16.StatusNotificationResponse()

    # SIGTERM leaves like Ctrl-C does: through close(), which removes this
    # node's presence at once instead of letting it expire.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with cluster:
        try:
            csms.serve_forever(args.host, args.port)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
