"""gunicorn settings for OpenScan Portal (used by `make run` and in production)."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
# Threads keep the worker's heartbeat going while a slow client sends a 200 MB part.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 120
graceful_timeout = 30
# OpenScan clients send every photo name in the query string: lines reach tens of KB.
# 0 lifts gunicorn's 8 KB cap; it then stops at 1 MB.
limit_request_line = 0
limit_request_field_size = 65536
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
