"""A back-office script: calls stations wherever they are connected, or reads the event stream.

    python backoffice.py list                    # which station is on which node
    python backoffice.py call                    # DataTransfer "whoami" to every station
    python backoffice.py call CP_0 CP_3          # ... to some of them
    python backoffice.py events --group billing  # print events (consumer group; Ctrl-C stops)

It holds no station connections itself: a Django or Flask worker does the same.
Add --redis URL if Redis is not on 127.0.0.1:6379.
"""
import argparse

import ocpp_sync
from ocpp_sync import v16
from ocpp_sync.cluster import Cluster, EventConsumer, StationNotConnected


def list_stations(cluster):
    for station_id, where in sorted(cluster.stations().items()):
        state = "" if where.alive else " (node not answering)"
        print(f"{station_id:<10} on {where.node_id} OCPP {where.version}{state}")
    print(f"nodes alive: {', '.join(cluster.nodes()) or 'none'}")


def call(cluster, station_ids):
    for station_id in station_ids or sorted(cluster.stations()):
        try:
            response = cluster.send(station_id, v16.DataTransferRequest(vendor_id="example",
                                                                        message_id="whoami"),
                                    timeout=10)
            print(f"{station_id}: {response.status.value}, {response.data}")
        except StationNotConnected as exc:
            print(f"{station_id}: not connected ({exc})")
        except ocpp_sync.OCPPError as exc:  # CallError, CallTimeout, ...
            print(f"{station_id}: failed: {type(exc).__name__} {exc}")


def events(redis_url, group, name, limit):
    left = limit
    with EventConsumer(redis_url, group, name) as consumer:
        while left is None or left > 0:
            for event in consumer.read(count=50 if left is None else min(50, left), block=2.0):
                print(f"{event.time} {event.node_id} {event.station_id} {event.action} "
                      f"{event.payload}")
                consumer.ack(event)  # after processing: a crash before this redelivers it
                if left is not None:
                    left -= 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    calling = sub.add_parser("call")
    calling.add_argument("stations", nargs="*")
    reading = sub.add_parser("events")
    reading.add_argument("--group", default="backoffice")
    reading.add_argument("--name", default="reader-1")
    reading.add_argument("--limit", type=int, default=None, help="stop after this many events")
    args = parser.parse_args()
    if args.command == "events":
        try:
            events(args.redis, args.group, args.name, args.limit)
        except KeyboardInterrupt:
            pass
        return
    with Cluster(args.redis) as cluster:
        if args.command == "list":
            list_stations(cluster)
        else:
            call(cluster, args.stations)


if __name__ == "__main__":
    main()
