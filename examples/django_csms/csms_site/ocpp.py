"""The CSMS of the site: one instance per process, shared by the websocket endpoint and the views.

Handlers run in each station's own thread, outside any Django request: one
that uses the ORM should call ``django.db.close_old_connections()`` when done.
"""
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
