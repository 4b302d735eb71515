"""OpenScan Portal settings.

Every value comes from an environment variable with an embedded default that
runs on one machine with nothing installed but Python: SQLite, the django-q2
ORM broker, local files and console e-mail. `.env.example` lists them all.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# A fixed key is only tolerable for local development; production must set one.
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default="dev-only-insecure-key-change-me-0123456789abcdefghijklmnop"
    if DEBUG
    else "",
)
if not SECRET_KEY:
    raise environ.ImproperlyConfigured(
        "Set DJANGO_SECRET_KEY (50+ random characters), or DJANGO_DEBUG=true for "
        "local use."
    )
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "django_q",
    "tokens",
    "projects",
]

MIDDLEWARE = [
    "openscan_portal.request_limits.RequestLineLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "openscan_portal.urls"
WSGI_APPLICATION = "openscan_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "openscan_portal.context_processors.portal",
            ],
        },
    },
]

# An empty DATABASE_URL means "the default", like an unset one.
DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    ),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write at the same time: wait for the lock
    # instead of failing, and let readers run beside the writer (WAL).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": (
            "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
        )
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise serves them; no CDN anywhere) -----------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG

# --- Storage: local | s3 | dropbox ------------------------------------------
MEDIA_ROOT = env.path("OPENSCAN_MEDIA_ROOT", default=str(BASE_DIR / "media"))
# Media is never served directly: downloads go through signed views.
MEDIA_URL = "/media/"
OPENSCAN_STORAGE = env.str("OPENSCAN_STORAGE", default="local")
_STORAGE_BACKENDS: dict[str, dict] = {
    "local": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    },
    "s3": {"BACKEND": "storages.backends.s3.S3Storage"},
    # django-storages' Dropbox backend with streaming reads and tolerant deletes.
    "dropbox": {"BACKEND": "projects.storage.DropboxStorage"},
}
if OPENSCAN_STORAGE not in _STORAGE_BACKENDS:
    raise environ.ImproperlyConfigured(
        f"OPENSCAN_STORAGE must be local, s3 or dropbox, not {OPENSCAN_STORAGE!r}."
    )
STORAGES = {
    "default": _STORAGE_BACKENDS[OPENSCAN_STORAGE],
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Downloads on s3/dropbox answer 302 to the backend (presigned GET, Dropbox shared
# link) instead of streaming through the web server. Off: stream everything here.
OPENSCAN_DOWNLOAD_REDIRECT = env.bool("OPENSCAN_DOWNLOAD_REDIRECT", default=True)

# S3 and S3-compatible stores (MinIO, Ceph, R2, ...), read by django-storages.
# Empty keys mean boto3's own chain (instance role, AWS_PROFILE, ~/.aws).
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or None
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or None
# "path" for most S3-compatible servers; empty lets botocore choose (virtual hosts on
# AWS).
AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", default="") or None
AWS_LOCATION = env.str("AWS_LOCATION", default="")
AWS_S3_SIGNATURE_VERSION = "s3v4"
AWS_S3_FILE_OVERWRITE = True
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
# Lifetime of a presigned download (GET) made when someone clicks a download link.
AWS_QUERYSTRING_EXPIRE = env.int("AWS_QUERYSTRING_EXPIRE", default=3600)
# REST clients may ask for a presigned POST (size-limited by its policy) or PUT
# to send a part straight to the bucket (POST /api/v1/projects/<id>/parts/<i>/direct/).
OPENSCAN_S3_DIRECT_UPLOADS = env.bool("OPENSCAN_S3_DIRECT_UPLOADS", default=True)

# Dropbox: an app's refresh token with its key and secret (a long-lived access
# token in DROPBOX_OAUTH2_TOKEN also works, but Dropbox no longer issues those).
DROPBOX_OAUTH2_TOKEN = env.str("DROPBOX_OAUTH2_TOKEN", default="") or None
DROPBOX_OAUTH2_REFRESH_TOKEN = env.str("DROPBOX_OAUTH2_REFRESH_TOKEN", default="")
DROPBOX_APP_KEY = env.str("DROPBOX_APP_KEY", default="")
DROPBOX_APP_SECRET = env.str("DROPBOX_APP_SECRET", default="")
DROPBOX_ROOT_PATH = env.str("DROPBOX_ROOT_PATH", default="/openscan-portal")
DROPBOX_TIMEOUT = env.int("DROPBOX_TIMEOUT", default=100)
# A job that runs again writes its results under the same names.
DROPBOX_WRITE_MODE = "overwrite"
# Upload links that are Dropbox temporary upload links (one-time, 4 hours), for the
# wire ulink and the REST direct endpoint. Off by default: Dropbox documents 150 MiB
# per upload, below the protocol's 200,000,000-byte parts, and the firmware's curl
# sends no octet-stream Content-Type; neither is verified against real Dropbox.
# On: parts are capped at OPENSCAN_DROPBOX_PART_MAX_BYTES.
OPENSCAN_DROPBOX_DIRECT_LINKS = env.bool("OPENSCAN_DROPBOX_DIRECT_LINKS", default=False)
OPENSCAN_DROPBOX_PART_MAX_BYTES = env.int(
    "OPENSCAN_DROPBOX_PART_MAX_BYTES", default=150 * 1024 * 1024
)

# --- Cache and background work ----------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

OPENSCAN_JOB_TIMEOUT_SECONDS = env.int("OPENSCAN_JOB_TIMEOUT_SECONDS", default=3600)
# Peak memory of one reconstruction's child process (MiB; 0: no limit). Above it
# the child is stopped and the project fails as out_of_memory.
OPENSCAN_JOB_MEMORY_LIMIT_MB = env.int("OPENSCAN_JOB_MEMORY_LIMIT_MB", default=12288)
OPENSCAN_JOB_MAX_ATTEMPTS = env.int("OPENSCAN_JOB_MAX_ATTEMPTS", default=3)
OPENSCAN_HEARTBEAT_STALE_SECONDS = env.int(
    "OPENSCAN_HEARTBEAT_STALE_SECONDS", default=120
)
# Least seconds between two progress writes of a running job (one UPDATE each):
# below the pages' poll interval, above what a busy database should absorb.
OPENSCAN_PROGRESS_WRITE_SECONDS = env.float(
    "OPENSCAN_PROGRESS_WRITE_SECONDS", default=1.0
)
Q_CLUSTER = {
    "name": "openscan",
    "workers": env.int("OPENSCAN_WORKERS", default=2),
    # The reconstruction runs in a child process with its own time limit; the
    # django-q2 timeout is only a backstop above it, and retry must exceed it.
    "timeout": OPENSCAN_JOB_TIMEOUT_SECONDS + 300,
    "retry": OPENSCAN_JOB_TIMEOUT_SECONDS + 600,
    "max_attempts": 1,
    # Workers start the engine in a child process of their own (time limit, memory,
    # cancellation); daemonic processes may not have children.
    "daemonize_workers": False,
    "ack_failures": True,
    "catch_up": False,
    "label": "Background tasks",
    **({"redis": REDIS_URL} if REDIS_URL else {"orm": "default"}),
}

# --- E-mail ------------------------------------------------------------------
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
OPENSCAN_UNSTARTED_GRACE_HOURS = env.int("OPENSCAN_UNSTARTED_GRACE_HOURS", default=24)
OPENSCAN_RETENTION_DAYS_PUBLIC = env.int("OPENSCAN_RETENTION_DAYS_PUBLIC", default=30)
OPENSCAN_RETENTION_DAYS_PRIVATE = env.int(
    "OPENSCAN_RETENTION_DAYS_PRIVATE", default=365
)
OPENSCAN_MAIL_RETRY_SECONDS = env.int("OPENSCAN_MAIL_RETRY_SECONDS", default=60)
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="OpenScan Portal <noreply@localhost>"
)

# --- API -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tokens.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested too deeply for Python's parser is a 400, not a RecursionError.
    "DEFAULT_PARSER_CLASSES": [
        "openscan_portal.drf.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "openscan_portal.drf.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    # Burst protection only (a cache counter); credit and quotas are database rows.
    "DEFAULT_THROTTLE_CLASSES": ["tokens.throttles.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        # Part PATCH/HEAD/GET and direct-upload targets, per token (public: per
        # address).
        "uploads": env.str("OPENSCAN_THROTTLE_UPLOADS", default="300/min"),
    },
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OpenScan Portal API",
    "DESCRIPTION": "Photos in, textured 3D model out. Authenticate with "
    "`Authorization: Bearer <token>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- OpenScan: tokens, credit, uploads -----------------------------------------
# The key the original service's clients ship with keeps working when set here.
# Clients refuse keys shorter than 15 characters before saving them (empty: the
# default).
OPENSCAN_PUBLIC_TOKEN = (
    env.str("OPENSCAN_PUBLIC_TOKEN", default="") or "osp_public_k7Qm2Xw9Rb4Tz"
)
OPENSCAN_PUBLIC_DAILY_QUOTA = env.int(
    "OPENSCAN_PUBLIC_DAILY_QUOTA", default=10_000_000_000
)
OPENSCAN_PUBLIC_LIMIT_FILESIZE = env.int(
    "OPENSCAN_PUBLIC_LIMIT_FILESIZE", default=1_000_000_000
)
OPENSCAN_PUBLIC_LIMIT_PHOTOS = env.int("OPENSCAN_PUBLIC_LIMIT_PHOTOS", default=200)
OPENSCAN_PUBLIC_BURST_BYTES = env.int(
    "OPENSCAN_PUBLIC_BURST_BYTES", default=3_000_000_000
)
OPENSCAN_PUBLIC_BURST_SECONDS = env.int("OPENSCAN_PUBLIC_BURST_SECONDS", default=600)
OPENSCAN_TRUSTED_PROXY_COUNT = env.int("OPENSCAN_TRUSTED_PROXY_COUNT", default=0)
OPENSCAN_SIGNUP_CREDIT = env.int("OPENSCAN_SIGNUP_CREDIT", default=5_000_000_000)
# /requestToken mails: at most this many per address per UTC day and per client
# address per hour.
OPENSCAN_TOKEN_MAILS_PER_ADDRESS = env.int(
    "OPENSCAN_TOKEN_MAILS_PER_ADDRESS", default=3
)
OPENSCAN_TOKEN_MAILS_PER_IP = env.int("OPENSCAN_TOKEN_MAILS_PER_IP", default=10)
OPENSCAN_PRIVATE_LIMIT_FILESIZE = env.int(
    "OPENSCAN_PRIVATE_LIMIT_FILESIZE", default=2_000_000_000
)
OPENSCAN_PRIVATE_LIMIT_PHOTOS = env.int("OPENSCAN_PRIVATE_LIMIT_PHOTOS", default=500)
OPENSCAN_PART_MAX_BYTES = env.int("OPENSCAN_PART_MAX_BYTES", default=200_000_000)
# A resumable PATCH is merged into the part's last stored piece while both together
# stay under this size, so tiny PATCHes cannot pile up objects in storage.
OPENSCAN_CHUNK_COALESCE_BYTES = env.int(
    "OPENSCAN_CHUNK_COALESCE_BYTES", default=8 * 1024 * 1024
)
OPENSCAN_UPLOAD_LINK_SECONDS = env.int("OPENSCAN_UPLOAD_LINK_SECONDS", default=4 * 3600)
OPENSCAN_MAX_IMAGE_PIXELS = env.int("OPENSCAN_MAX_IMAGE_PIXELS", default=120_000_000)
OPENSCAN_ZIP_MAX_ENTRIES = env.int("OPENSCAN_ZIP_MAX_ENTRIES", default=5000)
OPENSCAN_ZIP_MAX_UNCOMPRESSED = env.int(
    "OPENSCAN_ZIP_MAX_UNCOMPRESSED", default=8_000_000_000
)
# CPU seconds the worker may spend checking one project's photos before refusing it.
OPENSCAN_ZIP_CHECK_CPU_SECONDS = env.int("OPENSCAN_ZIP_CHECK_CPU_SECONDS", default=120)
# Base of absolute links handed to clients (ulink, dlink); the request's host when
# empty.
OPENSCAN_PUBLIC_URL = env.str("OPENSCAN_PUBLIC_URL", default="")
# Where people write when they are stuck (shown as a mailto link on the account
# pages and in the footer); no contact is offered when empty.
OPENSCAN_CONTACT_EMAIL = env.str("OPENSCAN_CONTACT_EMAIL", default="")

# --- Security (all on unless DEBUG; `check --deploy` stays clean) ---------------
# gunicorn already takes the scheme from X-Forwarded-Proto, but only from the
# proxies in FORWARDED_ALLOW_IPS. Django's own header check trusts any client,
# so it is on only where every request passes a proxy that overwrites the header.
if env.bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Upload links and wire calls come from rigs that speak plain HTTP on a LAN;
# they are exempt from the redirect (a POST would not follow it anyway).
SECURE_REDIRECT_EXEMPT = [
    r"^u/",
    r"^(getTokenInfo|createProject|startProject|getProjectInfo|resetProject|requestToken|getQueueEstimate|status)$",
]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int(
    "DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (django-csp): scripts, styles and
# fonts from this origin only, no inline script or style. The viewer's needs
# are explicit: three.js's GLTFLoader decodes embedded textures from blob: URLs
# (fetched, then drawn), and workers may come from this origin or a blob:;
# Swagger UI draws its icons from data: images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        # WebAssembly only (the viewer's vendored Draco decoder), never eval().
        "script-src": ["'self'", "'wasm-unsafe-eval'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'", "blob:"],
        "worker-src": ["'self'", "blob:"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGIN_URL = "/admin/login/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    # Wire calls carry the token in the query string: no log line may keep it.
    "filters": {"redact": {"()": "openscan_portal.logredact.RedactTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        }
    },
    "root": {
        "handlers": ["console"],
        "level": env.str("DJANGO_LOG_LEVEL", default="INFO"),
    },
    # runserver's request log would print query strings through its own handler.
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False}
    },
}

# --- Accounts and portal pages ---
# Sign-up, e-mail verification, log-in and password reset come from django-allauth;
# the private token is issued when the address is verified (accounts.adapter).
INSTALLED_APPS += ["allauth", "allauth.account", "accounts"]
MIDDLEWARE += ["allauth.account.middleware.AccountMiddleware"]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "projects:list"
ACCOUNT_LOGOUT_REDIRECT_URL = "projects:home"
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.forms.SignupForm"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS = 3
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[OpenScan Portal] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_USER_DISPLAY = "accounts.adapter.user_display"
# How often the project page asks the REST API for progress.
OPENSCAN_POLL_SECONDS = env.float("OPENSCAN_POLL_SECONDS", default=2.0)
# Size of each resumable PATCH the upload page sends.
OPENSCAN_BROWSER_CHUNK_BYTES = env.int(
    "OPENSCAN_BROWSER_CHUNK_BYTES", default=8 * 1024 * 1024
)
