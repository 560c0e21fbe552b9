"""A small OCPP 2.0.1 charging station.

It boots, reports its connector, authorizes a token and charges, sending a
TransactionEvent "Updated" with a meter value every second until the CSMS
asks it to stop (or 30 values have been sent), then ends the transaction.

    python examples/central_system_v201.py           # first, in another terminal
    python examples/charge_point_v201.py [--port 9000] [--id CS_1]
"""
import argparse
import threading
import uuid
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import v201

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=9000)
parser.add_argument("--id", default="CS_1")
args = parser.parse_args()

# The station's id is appended to the URL: ws://127.0.0.1:9000/CS_1
cp = ocpp_sync.ChargePoint(args.id, f"ws://{args.host}:{args.port}/", version="2.0.1")
remote_stop = threading.Event()
# In 2.0.1 the station chooses the transaction id.
transaction_id = str(uuid.uuid4())
variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "300"}


def now():
    return datetime.now(timezone.utc)


# Handlers answer the CSMS's calls in the connection's own thread while the
# main thread below goes on charging.
@cp.on(v201.RequestStopTransactionRequest)
def on_request_stop(request):
    if request.transaction_id != transaction_id:
        return v201.RequestStopTransactionResponse(status=v201.RequestStartStopStatusEnumType.REJECTED)
    remote_stop.set()  # the main thread sends the "Ended" event after this answer
    return v201.RequestStopTransactionResponse(status=v201.RequestStartStopStatusEnumType.ACCEPTED)


@cp.on(v201.GetVariablesRequest)
def on_get_variables(request):
    results = []
    for item in request.get_variable_data:
        value = variables.get((item.component.name, item.variable.name))
        status = (v201.GetVariableStatusEnumType.ACCEPTED if value is not None
                  else v201.GetVariableStatusEnumType.UNKNOWN_VARIABLE)
        results.append(v201.GetVariableResultType(attribute_status=status, attribute_value=value,
                                                  component=item.component, variable=item.variable))
    return v201.GetVariablesResponse(get_variable_result=results)


def status(state):
    cp.send(v201.StatusNotificationRequest(timestamp=now(), connector_status=state,
                                           evse_id=1, connector_id=1))


def transaction_event(event_type, trigger, seq_no, meter, **extra):
    sample = v201.SampledValueType(value=meter,
                                   measurand=v201.MeasurandEnumType.ENERGY_ACTIVE_IMPORT_REGISTER)
    return cp.send(v201.TransactionEventRequest(
        event_type=event_type, timestamp=now(), trigger_reason=trigger, seq_no=seq_no,
        meter_value=[v201.MeterValueType(timestamp=now(), sampled_value=[sample])], **extra))


def main():
    token = v201.IdTokenType(id_token="TOKEN-001", type=v201.IdTokenEnumType.ISO14443)
    with cp:  # connects here, closes at the end of the block
        boot = cp.send(v201.BootNotificationRequest(
            reason=v201.BootReasonEnumType.POWER_UP,
            charging_station=v201.ChargingStationType(vendor_name="ACME", model="X2")))
        print(f"boot: {boot.status.value}, heartbeat every {boot.interval} s")
        print(f"CSMS time: {cp.send(v201.HeartbeatRequest()).current_time}")
        status(v201.ConnectorStatusEnumType.AVAILABLE)

        auth = cp.send(v201.AuthorizeRequest(id_token=token))
        print(f"token TOKEN-001: {auth.id_token_info.status.value}")
        status(v201.ConnectorStatusEnumType.OCCUPIED)
        transaction_event(
            v201.TransactionEventEnumType.STARTED, v201.TriggerReasonEnumType.AUTHORIZED, 0, 0,
            transaction_info=v201.TransactionType(transaction_id=transaction_id,
                                                  charging_state=v201.ChargingStateEnumType.CHARGING),
            id_token=token, evse=v201.EVSEType(id=1, connector_id=1))
        print(f"transaction {transaction_id} started")

        meter, seq_no = 0, 1
        for _ in range(30):
            if remote_stop.wait(timeout=1.0):
                break
            meter += 200
            transaction_event(v201.TransactionEventEnumType.UPDATED,
                              v201.TriggerReasonEnumType.METER_VALUE_PERIODIC, seq_no, meter,
                              transaction_info=v201.TransactionType(transaction_id=transaction_id))
            seq_no += 1
            print(f"sent meter value {meter} Wh")

        remote = remote_stop.is_set()
        transaction_event(
            v201.TransactionEventEnumType.ENDED,
            v201.TriggerReasonEnumType.REMOTE_STOP if remote else v201.TriggerReasonEnumType.STOP_AUTHORIZED,
            seq_no, meter,
            transaction_info=v201.TransactionType(
                transaction_id=transaction_id,
                stopped_reason=v201.ReasonEnumType.REMOTE if remote else v201.ReasonEnumType.LOCAL))
        print(f"transaction {transaction_id} ended ({'remote' if remote else 'local'} stop), {meter} Wh")
        status(v201.ConnectorStatusEnumType.AVAILABLE)


if __name__ == "__main__":
    main()
