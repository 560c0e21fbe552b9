"""A small OCPP 1.6 charge point.

It boots, reports its connector, authorizes a tag and charges, sending a
meter value every second until the central system stops the transaction
remotely (or 30 values have been sent), then ends the transaction and exits.

    python examples/central_system_v16.py            # first, in another terminal
    python examples/charge_point_v16.py [--port 9000] [--id CP_1]
"""
import argparse
import threading
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import v16

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=9000)
parser.add_argument("--id", default="CP_1")
args = parser.parse_args()

# The charge point's id is appended to the URL: ws://127.0.0.1:9000/CP_1
cp = ocpp_sync.ChargePoint(args.id, f"ws://{args.host}:{args.port}/", version="1.6")
remote_stop = threading.Event()
current = {"transaction_id": None}


def now():
    return datetime.now(timezone.utc)


# Calls from the central system are answered by handlers, which run in the
# connection's own thread while the main thread below goes on with its work.
@cp.on(v16.RemoteStopTransactionRequest)
def on_remote_stop(request):
    if request.transaction_id != current["transaction_id"]:
        return v16.RemoteStopTransactionResponse(status=v16.RemoteStartStopStatus.REJECTED)
    remote_stop.set()  # the main thread sends StopTransaction after this answer
    return v16.RemoteStopTransactionResponse(status=v16.RemoteStartStopStatus.ACCEPTED)


def status(state):
    cp.send(v16.StatusNotificationRequest(connector_id=1, error_code=v16.ChargePointErrorCode.NO_ERROR,
                                          status=state, timestamp=now()))


def main():
    with cp:  # connects here, closes at the end of the block
        boot = cp.send(v16.BootNotificationRequest(charge_point_vendor="ACME", charge_point_model="X1"))
        print(f"boot: {boot.status.value}, heartbeat every {boot.interval} s")
        print(f"central system time: {cp.send(v16.HeartbeatRequest()).current_time}")
        status(v16.ChargePointStatus.AVAILABLE)

        auth = cp.send(v16.AuthorizeRequest(id_tag="TAG-001"))
        print(f"tag TAG-001: {auth.id_tag_info.status.value}")
        started = cp.send(v16.StartTransactionRequest(connector_id=1, id_tag="TAG-001",
                                                      meter_start=0, timestamp=now()))
        current["transaction_id"] = started.transaction_id
        print(f"transaction {started.transaction_id} started")
        status(v16.ChargePointStatus.CHARGING)

        meter = 0
        for _ in range(30):
            if remote_stop.wait(timeout=1.0):
                break
            meter += 200
            sample = v16.SampledValue(value=str(meter), unit=v16.UnitOfMeasure.WH,
                                      measurand=v16.Measurand.ENERGY_ACTIVE_IMPORT_REGISTER)
            cp.send(v16.MeterValuesRequest(connector_id=1, transaction_id=started.transaction_id,
                                           meter_value=[v16.MeterValue(timestamp=now(),
                                                                       sampled_value=[sample])]))
            print(f"sent meter value {meter} Wh")

        reason = v16.Reason.REMOTE if remote_stop.is_set() else v16.Reason.LOCAL
        cp.send(v16.StopTransactionRequest(transaction_id=started.transaction_id, meter_stop=meter,
                                           timestamp=now(), reason=reason))
        print(f"transaction {started.transaction_id} stopped ({reason.value}), {meter} Wh")
        status(v16.ChargePointStatus.AVAILABLE)


if __name__ == "__main__":
    main()
