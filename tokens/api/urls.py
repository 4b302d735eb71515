from django.urls import path

from tokens.api import views

app_name = "tokens-api"

urlpatterns = [
    path("token/", views.TokenDetailApi.as_view(), name="detail"),
    path("token/ledger/", views.LedgerListApi.as_view(), name="ledger"),
]
