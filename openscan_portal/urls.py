from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("projects.api.urls")),
    path("api/v1/", include("tokens.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI with its start-up script as a file (no inline script: CSP); no
    # ReDoc, whose page loads fonts from a CDN.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", template_name="api/swagger_ui.html"
        ),
        name="api-docs",
    ),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("", include("tokens.urls")),
    path("", include("projects.urls")),
    # Root-level wire paths (/status, /getTokenInfo, ...) stay last.
    path("", include("projects.urls_wire")),
]
