"""An OCPP 2.0.1 CSMS under security profile 3 (mutual TLS).

Only stations with a certificate signed by your CA get in, and only under the
id their certificate names (its subject CN). Every refused connection is
printed as a security event. Make the certificates first (see the README's
"Security profiles" section), then:

    python examples/profile3_csms.py --certs certs            # listens on 127.0.0.1:9443
    python examples/profile3_charge_point.py --certs certs --id CP_1

Stop it with Ctrl-C.
"""
import argparse
import os
import threading
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import security, v201

csms = ocpp_sync.CSMS(versions=("2.0.1",))


def now():
    return datetime.now(timezone.utc)


@csms.on(v201.BootNotificationRequest)
def on_boot(station, request):
    print(f"{station.id}: booted ({request.charging_station.vendor_name} "
          f"{request.charging_station.model})")
    return v201.BootNotificationResponse(current_time=now(), interval=300,
                                         status=v201.RegistrationStatusEnumType.ACCEPTED)


@csms.on(v201.HeartbeatRequest)
def on_heartbeat(station, request):
    return v201.HeartbeatResponse(current_time=now())


@csms.on(v201.StatusNotificationRequest)
def on_status(station, request):
    print(f"{station.id}: EVSE {request.evse_id} connector {request.connector_id} is "
          f"{request.connector_status.value}")
    return v201.StatusNotificationResponse()


@csms.on(v201.SecurityEventNotificationRequest)
def on_station_security_event(station, request):
    print(f"{station.id}: reports security event {request.type}")
    return v201.SecurityEventNotificationResponse()


def on_security_event(event: security.SecurityEvent) -> None:
    """Called for every refused handshake; a real CSMS would raise an alert here."""
    print(f"refused {event.remote_address} (station {event.station_id or '?'}): "
          f"{event.reason} {event.status or ''} {event.detail}".rstrip(), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--certs", default="certs",
                        help="folder with ca.pem, csms.pem and csms.key")
    args = parser.parse_args()

    # The CSMS's own certificate, and the CA whose signature a station's certificate must carry.
    context = security.server_ssl_context(
        os.path.join(args.certs, "csms.pem"), os.path.join(args.certs, "csms.key"),
        cafile=os.path.join(args.certs, "ca.pem"), require_client_certificate=True)
    csms.start(
        host=args.host, port=args.port,
        ssl_context=context,
        # Profile 3 has no password: the certificate's CN must be the station id of the URL.
        authenticate=security.simple_authenticator(require_certificate=True),
        strict_station_ids=True,
        on_security_event=on_security_event,
    )
    print(f"CSMS listening on wss://{args.host}:{csms.port}/<station id>", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        csms.stop()
        print("CSMS stopped", flush=True)


if __name__ == "__main__":
    main()
