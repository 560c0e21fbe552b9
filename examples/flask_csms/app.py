"""A Flask back office that is also the CSMS: one process serves the pages and the stations.

Stations connect to ws://HOST:PORT/ocpp/<station id> (OCPP 1.6 or 2.0.1). The
page at / lists the connected stations, each with a button that sends it a
Reset; POST /stations/<id>/reset does the same for scripts and answers JSON.

    python app.py --port 5000                                     # werkzeug, threaded
    gunicorn -c gunicorn.conf.py app:app                          # gunicorn, gthread

With STATION_PASSWORDS="CP_1=secret,CP_2=other" set, stations must log in
with HTTP Basic auth (security profile 1): user = station id, and the password.
"""
import argparse
import itertools
import os
import threading
from datetime import datetime, timezone

from flask import Flask, render_template_string, request

import ocpp_sync
from ocpp_sync import security, v16, v201
from ocpp_sync.contrib.flask import mount

csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"), timeout=10)

# What each station told us at boot, for the page; written by handlers, read by views.
booted: dict[str, str] = {}
booted_lock = threading.Lock()


def now():
    return datetime.now(timezone.utc)


@csms.on(v16.BootNotificationRequest)
def on_boot_v16(station, request):
    with booted_lock:
        booted[station.id] = f"{request.charge_point_vendor} {request.charge_point_model}"
    return v16.BootNotificationResponse(current_time=now(), interval=300,
                                        status=v16.RegistrationStatus.ACCEPTED)


@csms.on(v201.BootNotificationRequest)
def on_boot_v201(station, request):
    with booted_lock:
        booted[station.id] = f"{request.charging_station.vendor_name} {request.charging_station.model}"
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


@csms.on_disconnect
def forget(station):
    with booted_lock:
        booted.pop(station.id, None)


def passwords_from_environment():
    """STATION_PASSWORDS="CP_1=secret,CP_2=other" -> {"CP_1": "secret", "CP_2": "other"}."""
    pairs = (item.split("=", 1) for item in os.environ.get("STATION_PASSWORDS", "").split(",") if item)
    return {station_id.strip(): password for station_id, password in pairs}


app = Flask(__name__)
passwords = passwords_from_environment()
mount(app, csms, "/ocpp/<station_id>",
      authenticate=security.simple_authenticator(passwords) if passwords else None)

PAGE = """<!doctype html>
<title>Stations</title>
<h1>Connected stations</h1>
<table>
  <tr><th>Id</th><th>OCPP</th><th>Address</th><th>Model</th><th></th></tr>
  {% for station in stations %}
  <tr><td>{{ station.id }}</td><td>{{ station.version }}</td><td>{{ station.remote_address }}</td>
      <td>{{ booted.get(station.id, "") }}</td>
      <td><button data-id="{{ station.id }}" onclick="reset(this.dataset.id)">Reset</button></td></tr>
  {% else %}
  <tr><td colspan="5">None yet: point a station at ws://{{ host }}/ocpp/&lt;id&gt;</td></tr>
  {% endfor %}
</table>
<pre id="result"></pre>
<script>
async function reset(id) {
  const answer = await fetch(`/stations/${encodeURIComponent(id)}/reset`, {method: "POST"});
  document.getElementById("result").textContent = JSON.stringify(await answer.json());
}
</script>
"""


@app.get("/")
def index():
    stations = sorted(csms.stations.values(), key=lambda station: station.id)
    with booted_lock:
        models = dict(booted)
    return render_template_string(PAGE, stations=stations, booted=models, host=request.host)


@app.post("/stations/<station_id>/reset")
def reset(station_id):
    station = csms.stations.get(station_id)
    if station is None:
        return {"station": station_id, "error": "not connected"}, 404
    if station.version == "1.6":
        message = v16.ResetRequest(type=v16.ResetType.SOFT)
    else:
        message = v201.ResetRequest(type=v201.ResetEnumType.IMMEDIATE)
    try:
        response = station.send(message)          # blocks this request until the station answers
    except ocpp_sync.CallError as exc:
        return {"station": station_id, "error": f"{exc.code}: {exc.description}"}, 502
    except ocpp_sync.CallTimeout:
        return {"station": station_id, "error": "no answer in time"}, 504
    except ocpp_sync.ConnectionClosed:
        return {"station": station_id, "error": "disconnected"}, 409
    return {"station": station_id, "status": response.status}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Flask back office and CSMS in one process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port, threaded=True)
