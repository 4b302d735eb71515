from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens import selectors
from tokens.api.auth import request_token
from tokens.models import CreditLedgerEntry


class TokenOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    masked_key = serializers.CharField()
    credit = serializers.IntegerField(help_text="Bytes that can be spent now.")
    limit_filesize = serializers.IntegerField()
    limit_photos = serializers.IntegerField()
    daily_quota = serializers.IntegerField(allow_null=True)
    used_today = serializers.IntegerField()
    forename = serializers.CharField()
    surname = serializers.CharField()
    email = serializers.CharField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class LedgerEntryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = CreditLedgerEntry
        fields = (
            "id",
            "created_at",
            "kind",
            "amount",
            "balance_after",
            "reason",
            "project_ref",
        )


class TokenDetailApi(APIView):
    OutputSerializer = TokenOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        token = request_token(request)
        data = {
            "kind": token.kind,
            "masked_key": token.masked_key,
            "credit": selectors.token_credit_available(token=token),
            "limit_filesize": token.limit_filesize,
            "limit_photos": token.limit_photos,
            "daily_quota": token.daily_quota,
            "used_today": selectors.token_usage_today(token=token),
            "forename": token.forename,
            "surname": token.surname,
            "email": token.email,
            "last_used_at": token.last_used_at,
        }
        return Response(self.OutputSerializer(data).data)


class LedgerListApi(APIView):
    OutputSerializer = LedgerEntryOutputSerializer

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        token = request_token(request)
        entries = selectors.ledger_list(token=token)[:500]
        return Response(self.OutputSerializer(entries, many=True).data)
