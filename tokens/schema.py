"""OpenAPI description of the token authentication (drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tokens.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, _auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Your OpenScan token: `Authorization: Bearer osp_…` (or "
            "`Token osp_…`).",
        }
