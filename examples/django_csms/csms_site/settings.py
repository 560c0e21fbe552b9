"""Settings of the example: no database, one app, CSRF on."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Set DJANGO_SECRET_KEY in any real deployment.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["csms_site"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "csms_site.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
WSGI_APPLICATION = "csms_site.wsgi.application"
DATABASES = {}
USE_TZ = True

# Station id -> password (security profile 1), from STATION_PASSWORDS="CP_1=secret,CP_2=other".
# Empty: any station may connect without credentials.
OCPP_STATION_PASSWORDS = {
    station_id.strip(): password
    for station_id, password in (item.split("=", 1)
                                 for item in os.environ.get("STATION_PASSWORDS", "").split(",") if item)
}
