"""Credit under real concurrency: threads on a barrier against PostgreSQL."""

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from openscan_portal.exceptions import ApplicationError
from projects.models import Project
from projects.services import project_create
from tokens import selectors
from tokens.models import CreditLedgerEntry, DailyUsage
from tokens.services import public_token_ensure, token_issue

GB = 1_000_000_000
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(count: int, work) -> Counter:
    barrier = threading.Barrier(count)
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait()
            result = work(i)
        except ApplicationError as exc:
            result = exc.status
        except Exception as exc:
            result = repr(exc)
        finally:
            connections.close_all()
        with lock:
            outcomes[result] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


@pytest.fixture(autouse=True)
def _needs_postgres():
    assert connection.vendor == "postgresql", (
        "row-level concurrency must be tested on PostgreSQL"
    )


def test_64_concurrent_creates_against_credit_for_10_charge_exactly_10():
    token, _ = token_issue(
        email="race@example.org",
        forename="R",
        surname="Ace",
        credit=10 * GB,
        limit_filesize=2 * GB,
    )

    outcomes = _race(
        64,
        lambda i: (
            project_create(
                token=token, name=f"scan-{i}.zip", photos=10, parts=5, filesize=GB
            )
            and "ok"
        ),
    )

    token.refresh_from_db()
    assert outcomes == Counter({"ok": 10, 402: 54})
    assert token.credit == 0
    assert selectors.ledger_sum(token=token) == 0
    assert CreditLedgerEntry.objects.filter(token=token, kind="charge").count() == 10
    assert Project.objects.filter(token=token).count() == 10


def test_64_concurrent_creates_of_one_name_make_one_project_and_one_charge():
    token, _ = token_issue(
        email="same@example.org", forename="S", surname="Ame", credit=10 * GB
    )

    outcomes = _race(
        64,
        lambda i: str(
            project_create(
                token=token, name="same name.zip", photos=3, parts=5, filesize=GB
            ).pk
        ),
    )

    project = Project.objects.get(token=token)
    assert outcomes == Counter(
        {str(project.pk): 64}
    )  # every caller got the same project
    token.refresh_from_db()
    assert token.credit == 9 * GB
    assert CreditLedgerEntry.objects.filter(token=token, kind="charge").count() == 1


def test_50_concurrent_public_creates_never_overshoot_the_daily_quota(settings):
    settings.OPENSCAN_PUBLIC_DAILY_QUOTA = 10 * GB
    public = public_token_ensure()

    outcomes = _race(
        50,
        lambda i: (
            project_create(
                token=public,
                name=f"pub-{i}.zip",
                photos=3,
                parts=4,
                filesize=700_000_000,
            )
            and "ok"
        ),
    )

    assert outcomes == Counter({"ok": 14, 402: 36})
    assert DailyUsage.objects.get(token=public).used == 14 * 700_000_000
