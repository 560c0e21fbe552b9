"""An OCPP 2.0.1 charging station under security profile 3 (mutual TLS).

It verifies the CSMS against your CA (host name included), proves who it is
with its own certificate, boots, sends a heartbeat and a status, and exits.

    python examples/profile3_csms.py --certs certs            # first, in another terminal
    python examples/profile3_charge_point.py --certs certs --id CP_1

Try ``--id CP_2`` with CP_1's certificate: the CSMS refuses it (HTTP 401).
"""
import argparse
import os
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import security, v201


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="wss://localhost:9443/",
                        help="the CSMS; its host name must be in the CSMS certificate")
    parser.add_argument("--id", default="CP_1")
    parser.add_argument("--certs", default="certs",
                        help="folder with ca.pem and CP_1.pem/CP_1.key (named after the station)")
    parser.add_argument("--cert", help="the station certificate (default: <certs>/<id>.pem)")
    parser.add_argument("--key", help="its private key (default: <certs>/<id>.key)")
    args = parser.parse_args()

    context = security.client_ssl_context(
        cafile=os.path.join(args.certs, "ca.pem"),
        certfile=args.cert or os.path.join(args.certs, f"{args.id}.pem"),
        keyfile=args.key or os.path.join(args.certs, f"{args.id}.key"))
    cp = ocpp_sync.ChargePoint(args.id, args.url, version="2.0.1", sslopt={"context": context})
    try:
        cp.connect()
    except ConnectionError as exc:   # HandshakeError: .status is the HTTP status, if any
        raise SystemExit(f"could not connect: {exc}") from None
    with cp:
        boot = cp.send(v201.BootNotificationRequest(
            charging_station=v201.ChargingStationType(vendor_name="ACME", model="X1"),
            reason=v201.BootReasonEnumType.POWER_UP))
        print(f"boot: {boot.status.value}, heartbeat every {boot.interval} s")
        print(f"CSMS time: {cp.send(v201.HeartbeatRequest()).current_time}")
        cp.send(v201.StatusNotificationRequest(
            timestamp=datetime.now(timezone.utc), evse_id=1, connector_id=1,
            connector_status=v201.ConnectorStatusEnumType.AVAILABLE))
        print("status sent; closing")


if __name__ == "__main__":
    main()
