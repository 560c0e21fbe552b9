"""A CSMS that caps each charge at 6 A for a while: smart charging from the CSMS's side.

It accepts every station (OCPP 1.6 and 2.0.1) and prints what each meter value
added. After a transaction's second meter value it sets a TxProfile of 6 A for
that transaction and reads the composite schedule back; after the fourth it
clears the profile, and the station charges at full power again. Play the
matching scenario with the simulator in another terminal:

    python examples/smart_charging_csms.py                  # listens on 127.0.0.1:9000
    ocpp-sync station ws://127.0.0.1:9000/ocpp --id CP_1 --scenario examples/scenario_smart_charging.json

(add ``--version 2.0.1`` to the station for 2.0.1). Stop it with Ctrl-C.
"""
import argparse
import threading
from datetime import datetime, timezone

import ocpp_sync
from ocpp_sync import v16, v201
from ocpp_sync.sim import CentralSystem

LIMIT_AMPS = 6
PROFILE_ID = 1

csms = ocpp_sync.CSMS(versions=("1.6", "2.0.1"))
central = CentralSystem()   # boots, authorizes and records transactions; we add the smart charging
central.install(csms)
samples = {}                # (station id, transaction id): meter values seen


def limit(station, transaction_id):
    """A TxProfile of LIMIT_AMPS for the running transaction, starting now."""
    start = datetime.now(timezone.utc).replace(microsecond=0)
    if station.version == "1.6":
        schedule = v16.ChargingSchedule(charging_rate_unit="A", start_schedule=start, charging_schedule_period=[
            v16.ChargingSchedulePeriod(start_period=0, limit=LIMIT_AMPS)])
        return v16.SetChargingProfileRequest(connector_id=1, cs_charging_profiles=v16.ChargingProfile(
            charging_profile_id=PROFILE_ID, stack_level=0, charging_profile_purpose="TxProfile",
            charging_profile_kind="Absolute", charging_schedule=schedule, transaction_id=transaction_id))
    schedule = v201.ChargingScheduleType(id=1, charging_rate_unit="A", start_schedule=start, charging_schedule_period=[
        v201.ChargingSchedulePeriodType(start_period=0, limit=LIMIT_AMPS)])
    return v201.SetChargingProfileRequest(evse_id=1, charging_profile=v201.ChargingProfileType(
        id=PROFILE_ID, stack_level=0, charging_profile_purpose="TxProfile", charging_profile_kind="Absolute",
        charging_schedule=[schedule], transaction_id=transaction_id))


def composite(station):
    """The station's own account of what it will do on connector / EVSE 1 for the next 5 minutes."""
    if station.version == "1.6":
        reply = station.send(v16.GetCompositeScheduleRequest(connector_id=1, duration=300, charging_rate_unit="A"))
        schedule = reply.charging_schedule
    else:
        reply = station.send(v201.GetCompositeScheduleRequest(evse_id=1, duration=300, charging_rate_unit="A"))
        schedule = reply.schedule
    return ", ".join(f"{p.limit:g} A from {p.start_period} s" for p in schedule.charging_schedule_period)


def clear(station):
    if station.version == "1.6":
        return station.send(v16.ClearChargingProfileRequest(id=PROFILE_ID))
    return station.send(v201.ClearChargingProfileRequest(charging_profile_id=PROFILE_ID))


def sampled(station, transaction_id, energy):
    """A meter value came in (and was answered): print it, cap or release the charge."""
    key = (station.id, transaction_id)
    count, before = samples.get(key, (0, central.transaction(*key).get("meter_start", 0)))
    samples[key] = (count + 1, energy)
    print(f"{station.id}: transaction {transaction_id} meter {energy} Wh (+{energy - before} Wh)", flush=True)
    if count + 1 == 2:
        status = station.send(limit(station, transaction_id)).status
        print(f"{station.id}: limit of {LIMIT_AMPS} A: {status}; composite schedule {composite(station)}", flush=True)
    elif count + 1 == 4:
        print(f"{station.id}: limit cleared: {clear(station).status}", flush=True)


# After-answer hooks run once the station has our answer, so the calls they make reach it after it.
@csms.after(v16.MeterValuesRequest)
def after_meter_values(station, request, response):
    if request.transaction_id is not None:
        energy = [sample.value for value in request.meter_value for sample in value.sampled_value]
        sampled(station, request.transaction_id, int(float(energy[-1])))


@csms.after(v201.TransactionEventRequest)
def after_transaction_event(station, request, response):
    if request.event_type == "Updated" and request.meter_value:
        energy = [sample.value for value in request.meter_value for sample in value.sampled_value]
        sampled(station, request.transaction_info.transaction_id, int(energy[-1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    csms.start(host=args.host, port=args.port)
    print(f"CSMS listening on ws://{args.host}:{csms.port}/<charge point id>", flush=True)
    try:
        threading.Event().wait()  # the CSMS serves in its own threads until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        csms.stop()
        print("CSMS stopped", flush=True)


if __name__ == "__main__":
    main()
