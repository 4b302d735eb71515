from django.urls import path

from tokens import views

app_name = "tokens"

urlpatterns = [
    path("token/", views.token_detail, name="detail"),
    path("token/regenerate/", views.token_regenerate, name="regenerate"),
]
