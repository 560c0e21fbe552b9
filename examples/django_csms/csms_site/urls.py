from django.urls import path

from . import views

# The stations' websocket endpoint (/ocpp/<id>) is not here: CSMSMiddleware in wsgi.py
# takes those upgrade requests before Django sees them.
urlpatterns = [
    path("", views.index, name="index"),
    path("stations/<str:station_id>/reset", views.reset, name="reset"),
]
