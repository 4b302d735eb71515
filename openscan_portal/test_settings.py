"""Test settings: the real settings plus test-only speed-ups.

The database comes from DATABASE_URL like everywhere else (CI runs the suite on
PostgreSQL and the fast part on SQLite); mail is caught in memory and tasks run
inline unless a test starts a real cluster.
"""

import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault(
    "DJANGO_SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
)
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")

from .settings import *  # noqa: F403
from .settings import Q_CLUSTER, STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tasks wait in the broker (the ORM unless REDIS_URL is set): tests run workers
# explicitly (jobs.job_run_next() or real qcluster processes), so starting a
# project never blocks a test.
if "redis" not in Q_CLUSTER:
    Q_CLUSTER = {**Q_CLUSTER, "orm": "default"}
Q_CLUSTER = {**Q_CLUSTER, "retry": 600, "timeout": 300}
# Worker processes started by a test share the test's media directory through this
# variable.
MEDIA_ROOT = os.environ.get("OPENSCAN_TEST_MEDIA_ROOT") or tempfile.mkdtemp(
    prefix="openscan-test-media-"
)
STORAGES = {
    **STORAGES,
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
OPENSCAN_PUBLIC_TOKEN = "osp_publictesttoken2026"  # noqa: S105  # a test value
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
