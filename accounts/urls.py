from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path(
        "verification/resend/",
        views.resend_verification,
        name="resend-verification",
    ),
]
