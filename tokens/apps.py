from django.apps import AppConfig


class TokensConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tokens"
    verbose_name = "Tokens and credit"

    def ready(self) -> None:
        from tokens import schema  # noqa: F401  registers the OpenAPI auth extension
