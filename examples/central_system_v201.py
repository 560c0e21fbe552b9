"""A small OCPP 2.0.1 central system (CSMS).

It accepts every charging station and every token, reads one variable from
each station after it boots, and stops each transaction remotely once the
station has reported meter values for it. Run it, then the station:

    python examples/central_system_v201.py           # listens on 127.0.0.1:9000
    python examples/charge_point_v201.py

Stop it with Ctrl-C.
"""
import argparse
import queue
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import v201

csms = ocpp_sync.CSMS(versions=("2.0.1",))

# Handlers run in each station's own thread; calls the CSMS starts itself are
# made by the main thread, which takes its work from this queue.
work: "queue.Queue[tuple]" = queue.Queue()


def now():
    return datetime.now(timezone.utc)


def accepted():
    return v201.IdTokenInfoType(status=v201.AuthorizationStatusEnumType.ACCEPTED)


@csms.on(v201.BootNotificationRequest)
def on_boot(station, request):
    box = request.charging_station
    print(f"{station.id}: booted ({box.vendor_name} {box.model}, reason {request.reason.value})")
    work.put(("read heartbeat interval", station, None))
    return v201.BootNotificationResponse(current_time=now(), interval=300,
                                         status=v201.RegistrationStatusEnumType.ACCEPTED)


@csms.on(v201.HeartbeatRequest)
def on_heartbeat(station, request):
    return v201.HeartbeatResponse(current_time=now())


@csms.on(v201.StatusNotificationRequest)
def on_status(station, request):
    print(f"{station.id}: EVSE {request.evse_id} connector {request.connector_id} "
          f"is {request.connector_status.value}")
    return v201.StatusNotificationResponse()


@csms.on(v201.AuthorizeRequest)
def on_authorize(station, request):
    print(f"{station.id}: authorizing token {request.id_token.id_token}")
    return v201.AuthorizeResponse(id_token_info=accepted())



@csms.on(v201.MeterValuesRequest)
def on_meter_values(station, request):
    """Readings taken outside a transaction (those inside one come in TransactionEvent)."""
    energy = [sample.value for meter_value in request.meter_value for sample in meter_value.sampled_value]
    print(f"{station.id}: EVSE {request.evse_id} meter {energy} Wh")
    return v201.MeterValuesResponse()

# 2.0.1 reports a transaction's start, progress and end in one message type.
@csms.on(v201.TransactionEventRequest)
def on_transaction_event(station, request):
    transaction_id = request.transaction_info.transaction_id
    energy = [sample.value for meter_value in request.meter_value or []
              for sample in meter_value.sampled_value]
    print(f"{station.id}: transaction {transaction_id} {request.event_type.value}, meter {energy} Wh")
    if request.event_type == v201.TransactionEventEnumType.UPDATED:
        work.put(("stop", station, transaction_id))
    if request.id_token is not None:  # the CSMS answers for the token it was given
        return v201.TransactionEventResponse(id_token_info=accepted())
    return v201.TransactionEventResponse()


def carry_out(what, station, transaction_id):
    """Calls from the CSMS block until the station answers (or raise)."""
    if what == "stop":
        response = station.send(v201.RequestStopTransactionRequest(transaction_id=transaction_id))
        print(f"{station.id}: remote stop of {transaction_id}: {response.status.value}")
    else:
        response = station.send(v201.GetVariablesRequest(get_variable_data=[v201.GetVariableDataType(
            component=v201.ComponentType(name="OCPPCommCtrlr"),
            variable=v201.VariableType(name="HeartbeatInterval"))]))
        result = response.get_variable_result[0]
        print(f"{station.id}: HeartbeatInterval is {result.attribute_value} "
              f"({result.attribute_status.value})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()

    csms.start(host=args.host, port=args.port)  # serves in background threads
    print(f"CSMS listening on ws://{args.host}:{csms.port}/<station id>", flush=True)
    stopped = set()
    try:
        while True:
            what, station, transaction_id = work.get()
            if what == "stop":
                if transaction_id in stopped:  # one remote stop per transaction is enough
                    continue
                stopped.add(transaction_id)
            try:
                carry_out(what, station, transaction_id)
            except (ocpp_sync.OCPPError, ConnectionError) as exc:
                print(f"{station.id}: {what} failed: {exc!r}")
    except KeyboardInterrupt:
        pass
    finally:
        csms.stop()  # closes every connection and joins the threads
        print("CSMS stopped", flush=True)


if __name__ == "__main__":
    main()
