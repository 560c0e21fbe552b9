"""Hosting a CSMS inside existing web applications.

``ocpp_sync.contrib.flask`` mounts one on a route of a Flask app;
``ocpp_sync.contrib.wsgi`` wraps any WSGI application (Django) so that
websocket upgrades on a path prefix reach the CSMS. Either way one process
serves the web pages and the stations, and a view can call a station directly.
"""
