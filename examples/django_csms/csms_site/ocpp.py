"""The CSMS of the site: one instance per process, shared by the websocket endpoint and the views.

Handlers run in each station's own thread, outside any Django request: one
that uses the ORM should call ``django.db.close_old_connections()`` when done.
"""
import itertools
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import v16, v201

csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), timeout=10)


def now():
    return datetime.now(timezone.utc)


@csms.on(v16.BootNotificationRequest)
def on_boot_v16(station, request):
    return v16.BootNotificationResponse(current_time=now(), interval=300,
                                        status=v16.RegistrationStatus.ACCEPTED)


@csms.on(v201.BootNotificationRequest)
def on_boot_v201(station, request):
    return v201.BootNotificationResponse(current_time=now(), interval=300,
                                         status=v201.RegistrationStatusEnumType.ACCEPTED)


@csms.on(v16.HeartbeatRequest)
def on_heartbeat_v16(station, request):
    return v16.HeartbeatResponse(current_time=now())


@csms.on(v201.HeartbeatRequest)
def on_heartbeat_v201(station, request):
    return v201.HeartbeatResponse(current_time=now())


# What a station reports besides its boot: connector states, tags, transactions, meter values.
# This back office accepts them all; a real one would store them.
transaction_ids = itertools.count(1)


@csms.on(v16.StatusNotificationRequest)
def on_status_v16(station, request):
    return v16.StatusNotificationResponse()


@csms.on(v201.StatusNotificationRequest)
def on_status_v201(station, request):
    return v201.StatusNotificationResponse()


@csms.on(v16.AuthorizeRequest)
def on_authorize_v16(station, request):
    return v16.AuthorizeResponse(id_tag_info=v16.IdTagInfo(status=v16.AuthorizationStatus.ACCEPTED))


@csms.on(v201.AuthorizeRequest)
def on_authorize_v201(station, request):
    return v201.AuthorizeResponse(
        id_token_info=v201.IdTokenInfoType(status=v201.AuthorizationStatusEnumType.ACCEPTED))


@csms.on(v16.StartTransactionRequest)
def on_start_v16(station, request):
    return v16.StartTransactionResponse(
        transaction_id=next(transaction_ids),
        id_tag_info=v16.IdTagInfo(status=v16.AuthorizationStatus.ACCEPTED))


@csms.on(v16.StopTransactionRequest)
def on_stop_v16(station, request):
    return v16.StopTransactionResponse()


@csms.on(v16.MeterValuesRequest)
def on_meter_values_v16(station, request):
    return v16.MeterValuesResponse()


@csms.on(v201.MeterValuesRequest)
def on_meter_values_v201(station, request):
    return v201.MeterValuesResponse()


@csms.on(v201.TransactionEventRequest)
def on_transaction_event_v201(station, request):
    if request.id_token is not None:  # a token in the event gets the CSMS's verdict on it
        return v201.TransactionEventResponse(
            id_token_info=v201.IdTokenInfoType(status=v201.AuthorizationStatusEnumType.ACCEPTED))
    return v201.TransactionEventResponse()


def reset(station_id: str) -> str:
    """Ask a connected station to reset; its answer ("Accepted", ...). Blocks until it answers.

    KeyError if it is not connected; ocpp_sync.CallError / CallTimeout / ConnectionClosed as sent.
    """
    station = csms.stations[station_id]
    if station.version == "1.6":
        message = v16.ResetRequest(type=v16.ResetType.SOFT)
    else:
        message = v201.ResetRequest(type=v201.ResetEnumType.IMMEDIATE)
    response = station.send(message)
    return ocpp_sync.to_payload(response)["status"]   # the wire value, e.g. "Accepted"
