from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib import admin

        from accounts.forms import AdminLoginForm

        # The admin log-in goes through the same rate limits as the portal's.
        admin.site.login_form = AdminLoginForm
