"""gunicorn settings for OpenScan Portal (used by `make run` and in production)."""

import multiprocessing
import os
import sys
from pathlib import Path

import gunicorn.http.message
from gunicorn.glogging import Logger

# The `gunicorn` script puts its own bin/ first on the path, not this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from openscan_portal.logredact import RedactTokens
from openscan_portal.request_limits import REQUEST_LINE_MAX

bind = os.environ.get(
    "GUNICORN_BIND",
    f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}",
)
workers = int(
    os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2))
)
# Threads keep the worker's heartbeat going while a slow client sends a 200 MB part.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 120
graceful_timeout = 30
# OpenScan clients send every photo name in the query string (5,000 photos fit in
# 1 MiB). gunicorn clamps limit_request_line to 8190 and reads 0 as "unlimited"
# (its line parser is quadratic), so raise its ceiling to exactly the portal's cap:
# longer lines get 414 after 1 MiB is read. The Django middleware holds the same cap.
gunicorn.http.message.MAX_REQUEST_LINE = REQUEST_LINE_MAX
limit_request_line = REQUEST_LINE_MAX
limit_request_field_size = 65536
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


class RedactingLogger(Logger):
    """gunicorn's logger; token values never reach the access or error log."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.addFilter(RedactTokens())


logger_class = RedactingLogger
