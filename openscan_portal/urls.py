from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("projects.api.urls")),
    path("api/v1/", include("tokens.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"
    ),
    path(
        "api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"
    ),
    path("accounts/", include("allauth.urls")),
    path("", include("tokens.urls")),
    path("", include("projects.urls")),
    # Root-level wire paths (/status, /getTokenInfo, ...) stay last.
    path("", include("projects.urls_wire")),
]
