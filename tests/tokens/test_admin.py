import pytest
from django.contrib.auth import get_user_model

from tokens.models import CreditLedgerEntry, Token

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client):
    admin = get_user_model().objects.create_superuser(
        "boss", "boss@example.org", "pw-long-enough-1"
    )
    client.force_login(admin)
    client.admin = admin
    return client


def test_changelist_shows_balance_usage_and_last_use(
    admin_client_, private_token, public_token
):
    page = admin_client_.get("/admin/tokens/token/")
    html = page.content.decode()
    assert page.status_code == 200
    assert private_token[0].masked_key in html
    # One unit system with the portal: decimal GB, the exact bytes on hover.
    assert '<span title="10,000,000,000 bytes">10.0 GB</span>' in html
    assert 'quota <span title="10,000,000,000 bytes">10.0 GB</span>/day' in html


def test_grant_with_reason_writes_a_ledger_row_with_the_admin(
    admin_client_, private_token
):
    token = private_token[0]
    url = f"/admin/tokens/token/{token.pk}/adjust/"
    assert admin_client_.get(url).status_code == 200
    r = admin_client_.post(
        url, {"amount": "-2000000000", "reason": "museum pilot ended"}
    )
    assert r.status_code == 302
    token.refresh_from_db()
    entry = CreditLedgerEntry.objects.filter(token=token).first()
    assert token.credit == 8_000_000_000
    assert (entry.kind, entry.amount, entry.reason, entry.created_by) == (
        "removal",
        -2_000_000_000,
        "museum pilot ended",
        admin_client_.admin,
    )


def test_removing_more_than_the_balance_shows_an_error_and_changes_nothing(
    admin_client_, private_token
):
    token = private_token[0]
    r = admin_client_.post(
        f"/admin/tokens/token/{token.pk}/adjust/",
        {"amount": "-20000000000", "reason": "x"},
    )
    assert r.status_code == 200
    assert "balance negative" in r.content.decode()
    assert token.ledger.count() == 1


def test_ledger_cannot_be_edited_or_deleted_in_admin(admin_client_, private_token):
    entry = private_token[0].ledger.get()
    assert (
        admin_client_.get(
            f"/admin/tokens/creditledgerentry/{entry.pk}/delete/"
        ).status_code
        == 403
    )
    assert (
        admin_client_.post(
            f"/admin/tokens/creditledgerentry/{entry.pk}/change/", {"amount": "1"}
        ).status_code
        == 403
    )
    entry.refresh_from_db()
    assert entry.amount == 10_000_000_000


def test_admin_creates_a_token_and_shows_the_key_once(admin_client_):
    r = admin_client_.post(
        "/admin/tokens/token/add/",
        {
            "forename": "Mo",
            "surname": "Museum",
            "email": "mo@example.org",
            "starting_credit": "3000000000",
            "limit_filesize": "2000000000",
            "limit_photos": "400",
        },
        follow=True,
    )
    assert r.status_code == 200
    message = next(str(m) for m in r.context["messages"])
    key = message.rsplit(" ", 1)[-1]
    token = Token.objects.get(email="mo@example.org")
    assert token.key_hash
    assert key.startswith("osp_")
    assert token.credit == 3_000_000_000
    assert token.ledger.get().created_by == admin_client_.admin


def test_deactivate_action(admin_client_, private_token):
    token = private_token[0]
    admin_client_.post(
        "/admin/tokens/token/", {"action": "deactivate", "_selected_action": [token.pk]}
    )
    token.refresh_from_db()
    assert token.is_active is False


def test_projects_of_a_token_are_one_click_away(admin_client_, private_token):
    page = admin_client_.get(
        f"/admin/tokens/token/{private_token[0].pk}/change/"
    ).content.decode()
    assert f"/admin/projects/project/?token__id__exact={private_token[0].pk}" in page


def test_staff_without_change_permission_gets_403_at_the_credit_desk(
    client, private_token
):
    staff = get_user_model().objects.create_user(
        "clerk", "clerk@example.org", "pw-long-enough-1", is_staff=True
    )
    client.force_login(staff)
    token = private_token[0]
    r = client.post(
        f"/admin/tokens/token/{token.pk}/adjust/", {"amount": "5", "reason": "x"}
    )
    assert r.status_code == 403
    assert token.ledger.count() == 1
