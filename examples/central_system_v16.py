"""A small OCPP 1.6 central system (CSMS).

It accepts every charge point, authorizes every tag, hands out transaction
ids, and once a transaction has sent its first meter values it stops that
transaction remotely. Run it, then the charge point in another terminal:

    python examples/central_system_v16.py            # listens on 127.0.0.1:9000
    python examples/charge_point_v16.py

Stop it with Ctrl-C.
"""
import argparse
import itertools
import queue
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import v16

csms = ocpp_sync.CSMS(versions=("1.6",))

# Handlers run in each station's own thread. Calling a station from a handler
# is allowed, but a remote stop is best sent after the MeterValues answer, so
# handlers hand that work to the main thread through this queue.
to_stop: "queue.Queue[tuple]" = queue.Queue()
transaction_ids = itertools.count(1)


def now():
    return datetime.now(timezone.utc)


@csms.on(v16.BootNotificationRequest)
def on_boot(station, request):
    print(f"{station.id}: booted ({request.charge_point_vendor} {request.charge_point_model})")
    return v16.BootNotificationResponse(current_time=now(), interval=300,
                                        status=v16.RegistrationStatus.ACCEPTED)


@csms.on(v16.HeartbeatRequest)
def on_heartbeat(station, request):
    return v16.HeartbeatResponse(current_time=now())


@csms.on(v16.StatusNotificationRequest)
def on_status(station, request):
    print(f"{station.id}: connector {request.connector_id} is {request.status.value}")
    return v16.StatusNotificationResponse()


@csms.on(v16.AuthorizeRequest)
def on_authorize(station, request):
    print(f"{station.id}: authorizing tag {request.id_tag}")
    return v16.AuthorizeResponse(id_tag_info=v16.IdTagInfo(status=v16.AuthorizationStatus.ACCEPTED))


@csms.on(v16.StartTransactionRequest)
def on_start(station, request):
    transaction_id = next(transaction_ids)
    print(f"{station.id}: transaction {transaction_id} started at {request.meter_start} Wh")
    return v16.StartTransactionResponse(
        transaction_id=transaction_id,
        id_tag_info=v16.IdTagInfo(status=v16.AuthorizationStatus.ACCEPTED))


@csms.on(v16.MeterValuesRequest)
def on_meter_values(station, request):
    for meter_value in request.meter_value:
        for sample in meter_value.sampled_value:
            print(f"{station.id}: meter {sample.value} {sample.unit.value if sample.unit else 'Wh'}")
    if request.transaction_id is not None:
        to_stop.put((station, request.transaction_id))
    return v16.MeterValuesResponse()


@csms.on(v16.StopTransactionRequest)
def on_stop(station, request):
    print(f"{station.id}: transaction {request.transaction_id} ended at {request.meter_stop} Wh")
    return v16.StopTransactionResponse()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()

    csms.start(host=args.host, port=args.port)  # serves in background threads
    print(f"CSMS listening on ws://{args.host}:{csms.port}/<charge point id>", flush=True)
    stopped = set()
    try:
        while True:
            station, transaction_id = to_stop.get()
            if transaction_id in stopped:
                continue
            stopped.add(transaction_id)
            # A blocking call to the station: returns its answer (or raises).
            try:
                response = station.send(v16.RemoteStopTransactionRequest(transaction_id=transaction_id))
            except (ocpp_sync.OCPPError, ConnectionError) as exc:
                print(f"{station.id}: remote stop failed: {exc!r}")
            else:
                print(f"{station.id}: remote stop of transaction {transaction_id}: {response.status.value}")
    except KeyboardInterrupt:
        pass
    finally:
        csms.stop()  # closes every connection and joins the threads
        print("CSMS stopped", flush=True)


if __name__ == "__main__":
    main()
