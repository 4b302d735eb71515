import datetime

import pytest
import time_machine
from django.core.management import call_command

from openscan_portal.clock import utc_day
from openscan_portal.exceptions import ApplicationError
from tokens import selectors, services
from tokens.models import CreditLedgerEntry, DailyUsage, SignupGrant, Token

GB = 1_000_000_000
pytestmark = pytest.mark.django_db


def test_token_issue_stores_only_the_hash_and_grants_credit_through_the_ledger():
    token, key = services.token_issue(
        email="a@example.org", forename="A", surname="B", credit=3 * GB
    )

    assert key.startswith("osp_")
    assert len(key) == 44
    assert token.key_hash == services.key_hash(key)
    assert key not in str(Token.objects.filter(pk=token.pk).values().get())
    assert token.masked_key == f"osp_…{key[-4:]}"
    assert token.credit == 3 * GB
    assert list(token.ledger.values_list("kind", "amount", "balance_after")) == [
        ("grant", 3 * GB, 3 * GB)
    ]
    assert selectors.token_get_by_key(key=key) == token


def test_unknown_and_deactivated_keys_are_not_found(private_token):
    token, key = private_token
    assert selectors.token_get_by_key(key=key + "x") is None
    Token.objects.filter(pk=token.pk).update(is_active=False)
    assert selectors.token_get_by_key(key=key) is None


def test_regenerate_stops_the_old_key_at_once(private_token):
    token, old = private_token
    new = services.token_regenerate(token=token)
    assert new != old
    assert selectors.token_get_by_key(key=old) is None
    assert selectors.token_get_by_key(key=new) == token


def test_charge_refund_and_adjust_keep_balance_equal_to_ledger_sum(private_token):
    token, _ = private_token
    services.credit_charge(token=token, amount=4 * GB, reason="p1", project_ref="x")
    services.credit_refund(
        token=token,
        amount=4 * GB,
        reason="p1 failed",
        project_ref="x",
        charged_on=utc_day(),
    )
    services.credit_adjust(token=token, amount=-GB, reason="correction")
    token.refresh_from_db()

    assert token.credit == 9 * GB
    assert selectors.ledger_sum(token=token) == token.credit
    assert list(token.ledger.order_by("id").values_list("kind", flat=True)) == [
        "grant",
        "charge",
        "refund",
        "removal",
    ]


def test_charge_beyond_balance_is_refused_and_changes_nothing(private_token):
    token, _ = private_token
    with pytest.raises(
        services.InsufficientCreditError, match="Not enough credit"
    ) as info:
        services.credit_charge(
            token=token, amount=11 * GB, reason="too big", project_ref="x"
        )
    token.refresh_from_db()
    assert info.value.status == 402
    assert token.credit == 10 * GB
    assert token.ledger.count() == 1


@pytest.mark.parametrize(("amount", "reason"), [(0, "x"), (-11 * GB, "x"), (GB, "  ")])
def test_admin_adjustment_rejects_zero_negative_balance_and_missing_reason(
    private_token, amount, reason
):
    token, _ = private_token
    with pytest.raises(ApplicationError):
        services.credit_adjust(token=token, amount=amount, reason=reason)
    assert token.ledger.count() == 1


def test_public_quota_is_per_utc_day_and_refunds_go_back_to_the_day_charged(
    public_token,
):
    quota = public_token.daily_quota
    with time_machine.travel(
        datetime.datetime(2026, 3, 1, 23, 59, 59, tzinfo=datetime.UTC), tick=False
    ):
        services.credit_charge(
            token=public_token, amount=quota, reason="all of it", project_ref="a"
        )
        with pytest.raises(
            services.InsufficientCreditError, match="quota for today is used up"
        ):
            services.credit_charge(
                token=public_token, amount=1, reason="one more", project_ref="b"
            )
        assert selectors.token_credit_available(token=public_token) == 0
    with time_machine.travel(
        datetime.datetime(2026, 3, 2, 0, 0, 0, tzinfo=datetime.UTC), tick=False
    ):
        assert selectors.token_credit_available(token=public_token) == quota
        services.credit_charge(
            token=public_token, amount=5, reason="next day", project_ref="c"
        )
        services.credit_refund(
            token=public_token,
            amount=quota,
            reason="failed",
            project_ref="a",
            charged_on=datetime.date(2026, 3, 1),
        )
        assert selectors.token_credit_available(token=public_token) == quota - 5
    usage = dict(DailyUsage.objects.values_list("day", "used"))
    assert usage == {datetime.date(2026, 3, 1): 0, datetime.date(2026, 3, 2): 5}
    assert CreditLedgerEntry.objects.filter(token=public_token).count() == 3


def test_public_token_ensure_is_idempotent_and_follows_the_configured_key(settings):
    settings.OPENSCAN_PUBLIC_TOKEN = "osp_first_public_key_000"
    first = services.public_token_ensure()
    settings.OPENSCAN_PUBLIC_TOKEN = "osp_second_public_key_00"
    second = services.public_token_ensure()
    assert first.pk == second.pk
    assert Token.objects.filter(kind="public").count() == 1
    assert selectors.token_get_by_key(key="osp_second_public_key_00") == second
    assert selectors.token_get_by_key(key="osp_first_public_key_000") is None


def test_create_token_command_prints_only_the_key(capsys):
    call_command(
        "create_token",
        "--kind",
        "private",
        "--email",
        "m@example.org",
        "--forename",
        "Mia",
        "--surname",
        "Museum",
        "--credit",
        "2000000000",
        "--limit-photos",
        "300",
    )
    key = capsys.readouterr().out.strip()
    token = selectors.token_get_by_key(key=key)
    assert token is not None
    assert "\n" not in key
    assert (token.credit, token.limit_photos, token.email) == (
        2 * GB,
        300,
        "m@example.org",
    )


def test_request_token_mails_a_key_once_and_a_reminder_after(mailoutbox):
    token = services.token_request(
        email="new@example.org", forename="Nia", surname="New"
    )
    again = services.token_request(
        email="NEW@example.org", forename="Nia", surname="New"
    )

    assert token is not None
    assert again is None
    assert Token.objects.filter(email__iexact="new@example.org").count() == 1
    key = next(word for word in mailoutbox[0].body.split() if word.startswith("osp_"))
    assert selectors.token_get_by_key(key=key) == token
    assert token.masked_key in mailoutbox[1].body
    assert "osp_" not in mailoutbox[1].body.replace(token.masked_key, "")


def test_an_address_gets_one_grant_ever_even_after_its_token_is_deactivated(
    mailoutbox,
):
    first = services.token_request(email="once@example.org", forename="O", surname="N")
    Token.objects.filter(pk=first.pk).update(is_active=False)

    again = services.token_request(email="Once@Example.org", forename="O", surname="N")

    assert again is None
    assert Token.objects.filter(email__iexact="once@example.org").count() == 1
    assert first.masked_key in mailoutbox[1].body


def test_sign_up_with_an_address_whose_grant_was_used_gets_no_second_credit(
    django_user_model,
):
    first = services.token_request(email="used@example.org", forename="U", surname="S")
    Token.objects.filter(pk=first.pk).update(is_active=False)
    user = django_user_model.objects.create_user(
        "used", email="used@example.org", password="pw-12345-long"
    )

    token, key = services.token_for_verified_user(user=user)

    assert key is not None
    assert token.pk != first.pk
    assert token.credit == 0
    assert SignupGrant.objects.get(email="used@example.org").token_id == first.pk


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one /64
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:192.0.2.7", "192.0.2.7", True),  # IPv4-mapped
        ("192.0.2.7", "192.0.2.8", False),
    ],
)
def test_a_public_client_is_its_ipv4_address_or_its_ipv6_64(one, other, same):
    from projects.clients import client_key

    assert (client_key(one) == client_key(other)) is same
    assert "192.0.2" not in client_key("192.0.2.7")  # only a keyed hash is kept
