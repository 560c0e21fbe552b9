# ONE worker: the CSMS and its stations live in that process, and every view must see them.
# Each connected station keeps one thread: give it more threads than stations plus page requests.
wsgi_app = "csms_site.wsgi:application"
workers = 1
worker_class = "gthread"
threads = 64
bind = "127.0.0.1:8000"
# Stations still connected at shutdown are cut after this long (they reconnect to the next worker).
graceful_timeout = 5
