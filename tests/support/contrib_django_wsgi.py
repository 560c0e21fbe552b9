"""The Django example's WSGI application (examples/django_csms) with the test diagnostics.

    gunicorn --chdir tests/support contrib_django_wsgi:application
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "examples" / "django_csms"))

from contrib_diagnostics import Diagnostics  # noqa: E402
from csms_site.ocpp import csms  # noqa: E402
from csms_site.wsgi import application as site  # noqa: E402

application = Diagnostics(site, csms)
