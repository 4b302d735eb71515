"""The credit desk: tokens with balance and usage, credit
grants with a reason, the ledger."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from openscan_portal.exceptions import ApplicationError
from openscan_portal.units import bytes_size
from tokens import selectors, services
from tokens.models import CreditLedgerEntry, Token


class CreditAdjustForm(forms.Form):
    amount = forms.IntegerField(
        help_text="Bytes; negative to remove credit. 1 GB = 1000000000.",
    )
    reason = forms.CharField(max_length=255, help_text="Written to the ledger.")


class TokenCreateForm(forms.ModelForm):
    starting_credit = forms.IntegerField(
        min_value=0, initial=0, help_text="Credit in bytes, written to the ledger."
    )

    class Meta:
        model = Token
        fields = [
            "forename",
            "surname",
            "email",
            "user",
            "limit_filesize",
            "limit_photos",
        ]


def _amount(value: int) -> str:
    """A ledger amount for people: '+4.8 GB' with the exact bytes on hover."""
    sign = "\u2212" if value < 0 else "+"
    return format_html(
        '<span title="{} bytes">{}{}</span>', f"{value:,}", sign, bytes_size(value)
    )


def _size(value: int) -> str:
    return format_html(
        '<span title="{} bytes">{}</span>', f"{value:,}", bytes_size(value)
    )


def _project_link(ref: str) -> str:
    """The ledger's project reference as a link to the project's admin page (the
    admin says so when the project was deleted since)."""
    if not ref:
        return "—"
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:projects_project_change", args=[ref]), ref
    )


class _LedgerColumns:
    """Amounts and project references of ledger rows, readable, for both admins."""

    @admin.display(description="amount", ordering="amount")
    def amount_human(self, obj: CreditLedgerEntry) -> str:
        return _amount(obj.amount)

    @admin.display(description="balance after", ordering="balance_after")
    def balance_after_human(self, obj: CreditLedgerEntry) -> str:
        return _size(obj.balance_after)

    @admin.display(description="project", ordering="project_ref")
    def project(self, obj: CreditLedgerEntry) -> str:
        return _project_link(obj.project_ref)


class LedgerInline(_LedgerColumns, admin.TabularInline):
    model = CreditLedgerEntry
    fields = [
        "created_at",
        "kind",
        "amount_human",
        "balance_after_human",
        "reason",
        "project",
        "created_by",
    ]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-created_at", "-id"]
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = [
        "masked_key",
        "kind",
        "owner",
        "email",
        "balance",
        "used_today",
        "limit_filesize_human",
        "limit_photos",
        "is_active",
        "last_used_at",
    ]
    list_filter = ["kind", "is_active"]
    search_fields = ["email", "forename", "surname", "key_hint"]
    readonly_fields = [
        "kind",
        "masked_key",
        "credit_human",
        "used_today",
        "last_used_at",
        "created_at",
        "links",
    ]
    fields = [
        "kind",
        "masked_key",
        "forename",
        "surname",
        "email",
        "user",
        "credit_human",
        "used_today",
        "limit_filesize",
        "limit_photos",
        "daily_quota",
        "is_active",
        "last_used_at",
        "created_at",
        "links",
    ]
    inlines = [LedgerInline]
    actions = ["deactivate", "activate"]

    @admin.display(description="owner")
    def owner(self, obj: Token) -> str:
        return f"{obj.forename} {obj.surname}".strip() or "—"

    @admin.display(description="balance")
    def balance(self, obj: Token) -> str:
        if obj.is_public:
            return format_html("quota {}/day", _size(obj.daily_quota))
        return _size(obj.credit)

    @admin.display(description="credit")
    def credit_human(self, obj: Token) -> str:
        return _size(obj.credit)

    @admin.display(description="used today")
    def used_today(self, obj: Token) -> str:
        return _size(selectors.token_usage_today(token=obj))

    @admin.display(description="limit per project", ordering="limit_filesize")
    def limit_filesize_human(self, obj: Token) -> str:
        return _size(obj.limit_filesize)

    @admin.display(description="")
    def links(self, obj: Token) -> str:
        if not obj.pk:
            return ""
        adjust = reverse("admin:tokens_token_adjust", args=[obj.pk])
        projects = (
            reverse("admin:projects_project_changelist") + f"?token__id__exact={obj.pk}"
        )
        return format_html(
            '<a class="button" href="{}">Grant or remove credit</a> &nbsp; <a '
            'href="{}">Projects of this token</a>',
            adjust,
            projects,
        )

    def get_form(
        self,
        request: HttpRequest,
        obj: Token | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> Any:
        if obj is None:
            kwargs["form"] = TokenCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Token | None = None) -> list[str]:
        if obj is None:
            return [
                "forename",
                "surname",
                "email",
                "user",
                "starting_credit",
                "limit_filesize",
                "limit_photos",
            ]
        return self.fields

    def get_inlines(self, request: HttpRequest, obj: Token | None = None) -> list:
        return [] if obj is None else self.inlines

    def get_readonly_fields(
        self, request: HttpRequest, obj: Token | None = None
    ) -> list[str]:
        return [] if obj is None else self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: Token, form: Any, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = services.token_issue(
            email=obj.email,
            forename=obj.forename,
            surname=obj.surname,
            credit=form.cleaned_data["starting_credit"],
            limit_filesize=obj.limit_filesize,
            limit_photos=obj.limit_photos,
            user=obj.user,
            created_by=request.user,
        )
        obj.pk = token.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"Token created. Its key, shown only now: {key}",
            level=messages.WARNING,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # The ledger refers to tokens; deactivate instead.

    @admin.action(description="Deactivate selected tokens")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        self.message_user(
            request, f"{queryset.update(is_active=False)} token(s) deactivated."
        )

    @admin.action(description="Activate selected tokens")
    def activate(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        self.message_user(
            request, f"{queryset.update(is_active=True)} token(s) activated."
        )

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<int:token_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="tokens_token_adjust",
            )
        ]
        return extra + super().get_urls()

    def adjust_view(self, request: HttpRequest, token_id: int) -> HttpResponse:
        token = get_object_or_404(Token, pk=token_id)
        if not self.has_change_permission(request, token):
            raise PermissionDenied
        form = CreditAdjustForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.credit_adjust(
                    token=token,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    created_by=request.user,
                )
            except (ApplicationError, ValidationError) as exc:
                form.add_error(None, getattr(exc, "message", str(exc)))
            else:
                self.message_user(request, "Credit changed and written to the ledger.")
                return HttpResponseRedirect(
                    reverse("admin:tokens_token_change", args=[token.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Grant or remove credit: {token}",
            "token": token,
            "credit_human": bytes_size(token.credit),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/tokens/adjust_credit.html", context)


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(_LedgerColumns, admin.ModelAdmin):
    list_display = [
        "created_at",
        "token",
        "kind",
        "amount_human",
        "balance_after_human",
        "reason",
        "project",
        "created_by",
    ]
    list_filter = ["kind"]
    search_fields = ["reason", "project_ref", "token__email"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
