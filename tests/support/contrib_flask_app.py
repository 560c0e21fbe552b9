"""The Flask example app (examples/flask_csms/app.py) with the test diagnostics, for the contrib tests.

    python tests/support/contrib_flask_app.py PORT                          # werkzeug, threaded
    gunicorn --chdir tests/support contrib_flask_app:app                    # gunicorn
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "examples" / "flask_csms"))

from app import app, csms  # noqa: E402
from contrib_diagnostics import Diagnostics  # noqa: E402

app.wsgi_app = Diagnostics(app.wsgi_app, csms)  # type: ignore[method-assign]

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 0, threaded=True)
