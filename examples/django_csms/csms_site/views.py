"""Normal Django views that call stations: the request blocks until the station answers."""
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

import ocpp_sync

from . import ocpp


def index(request):
    stations = sorted(ocpp.csms.stations.values(), key=lambda station: station.id)
    return render(request, "stations.html", {"stations": stations, "host": request.get_host()})


@require_POST
def reset(request, station_id):
    try:
        status = ocpp.reset(station_id)
    except KeyError:
        return JsonResponse({"station": station_id, "error": "not connected"}, status=404)
    except ocpp_sync.CallError as exc:
        return JsonResponse({"station": station_id, "error": f"{exc.code}: {exc.description}"}, status=502)
    except ocpp_sync.CallTimeout:
        return JsonResponse({"station": station_id, "error": "no answer in time"}, status=504)
    except ocpp_sync.ConnectionClosed:
        return JsonResponse({"station": station_id, "error": "disconnected"}, status=409)
    return JsonResponse({"station": station_id, "status": status})
