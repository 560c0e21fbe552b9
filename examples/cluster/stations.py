"""Simulated charge points spread over the cluster's nodes without a load balancer.

    python stations.py ws://127.0.0.1:9001/ocpp ws://127.0.0.1:9002/ocpp --count 4

Station i connects to node i mod N; when its connection drops (the node was
stopped, say) it moves on to the next node in the list, round-robin. Each
answers a DataTransfer "whoami" with the node it is connected to. Ctrl-C stops.
"""
import argparse
import itertools
import logging
import threading
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import v16

log = logging.getLogger("stations")


def run_station(station_id, urls, first, stop):
    turn = first
    while not stop.is_set():
        url = urls[turn % len(urls)]
        turn += 1
        cp = ocpp_sync.ChargePoint(station_id, url, version="1.6", timeout=10)

        @cp.on(v16.DataTransferRequest)
        def whoami(request, url=url):
            return v16.DataTransferResponse(status=v16.DataTransferStatus.ACCEPTED,
                                            data=f"{station_id} on {url}")

        @cp.on(v16.TriggerMessageRequest)
        def trigger(request):
            return v16.TriggerMessageResponse(status=v16.TriggerMessageStatus.ACCEPTED)

        try:
            cp.connect()
            cp.send(v16.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1"))
            cp.send(v16.StatusNotificationRequest(connector_id=1, error_code="NoError",
                                                  status="Available",
                                                  timestamp=datetime.now(timezone.utc)))
            log.info("%s connected to %s", station_id, url)
            for tick in itertools.count(1):
                if stop.wait(1) or not cp.connected:
                    break
                if tick % 10 == 0:
                    cp.send(v16.HeartbeatRequest())
        except (OSError, ocpp_sync.OCPPError) as exc:
            log.info("%s: %s is unavailable (%s)", station_id, url, exc)
        finally:
            cp.close()
        if not stop.is_set():
            log.info("%s: moving on to the next node", station_id)
            stop.wait(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="the nodes' websocket URLs")
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("ocpp_sync").setLevel(logging.WARNING)
    stop = threading.Event()
    threads = [threading.Thread(target=run_station, args=(f"CP_{i}", args.urls, i, stop),
                                name=f"CP_{i}") for i in range(args.count)]
    for thread in threads:
        thread.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        stop.set()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
