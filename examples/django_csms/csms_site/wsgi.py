"""The WSGI application: websocket upgrades on /ocpp/ go to the CSMS, everything else to Django.

Serve it with gunicorn, gthread workers, ONE worker (see gunicorn.conf.py).
"""
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from ocpp_sync import security
from ocpp_sync.contrib.wsgi import CSMSMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csms_site.settings")

django_application = get_wsgi_application()

from .ocpp import csms  # noqa: E402  (after Django is set up)

passwords = settings.OCPP_STATION_PASSWORDS
application = CSMSMiddleware(
    django_application, csms, prefix="/ocpp/",
    authenticate=security.simple_authenticator(passwords) if passwords else None)
