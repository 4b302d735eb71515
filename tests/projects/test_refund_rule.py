"""The refund rule under any order of create, start, run, cancel, reprocess, reset
and delete.

The rule (README, "What is charged and refunded"): a charge comes back unless a
run delivered a model or was stopped by its owner. A hypothesis state machine
drives random sequences through the services on PostgreSQL (row locks are real)
and keeps its own account of what each project should cost; after every step
the token's balance must equal its ledger sum and the cost of the kept charges.
The worker's engine is the one step played here: "the run delivered a model"
is the same conditional UPDATE job_run ends with.
"""

import datetime
import io
import itertools

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from openscan_portal.exceptions import ApplicationError
from projects.models import Project
from projects.services import (
    jobs,
    part_replace,
    project_cancel,
    project_create,
    project_delete,
    project_reprocess,
    project_reset,
    project_start,
)
from tests.images import photo_set, zip_bytes
from tests.projects.conftest import queue_project
from tokens.models import CreditLedgerEntry, Token
from tokens.services import token_issue

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

CREDIT = 10_000_000
ZIP = zip_bytes(photo_set(3))
NAMES = ("a.zip", "b.zip")
_EMAILS = (f"rule{n}@example.org" for n in itertools.count())


class RefundMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.token, _ = token_issue(
            credit=CREDIT, email=next(_EMAILS), forename="R", surname="Ule"
        )
        # The model: per name, its status and the charge it holds; plus what was spent.
        self.status: dict[str, str] = {}
        self.held: dict[str, int] = {}
        self.size: dict[str, int] = {}
        self.spent = 0

    def teardown(self) -> None:
        # The worker claims across tokens: leave no queued project to the next example.
        Project.objects.filter(token=self.token).delete()

    def _pick(self, data: st.DataObject, *statuses: str) -> str:
        names = sorted(
            n for n, s in self.status.items() if not statuses or s in statuses
        )
        return data.draw(st.sampled_from(names))

    def _has(self, *statuses: str) -> bool:
        return any(not statuses or s in statuses for s in self.status.values())

    def _project(self, name: str) -> Project:
        return Project.objects.get(token=self.token, name=name)

    @rule(name=st.sampled_from(NAMES), fits=st.booleans())
    def create(self, name: str, fits: bool) -> None:
        size = len(ZIP) if fits else len(ZIP) + 7  # the wrong size cannot start
        status = self.status.get(name)
        if status not in (None, "created"):
            with pytest.raises(ApplicationError):
                project_create(
                    token=self.token, name=name, photos=3, parts=1, filesize=size
                )
            return
        project_create(token=self.token, name=name, photos=3, parts=1, filesize=size)
        self.status[name], self.held[name], self.size[name] = "created", size, size

    @precondition(lambda self: self._has())
    @rule(data=st.data())
    def upload_and_start(self, data: st.DataObject) -> None:
        name = self._pick(data)
        project = self._project(name)
        status = self.status[name]
        if status == "created":
            part_replace(
                project=project,
                generation=project.upload_generation,
                part=0,
                stream=io.BytesIO(ZIP),
                length=len(ZIP),
            )
        if status == "created" and self.size[name] == len(ZIP):
            project_start(project=project)
            self.status[name] = "queued"
            self.held[name] = self.size[name]  # after a reset, start charges anew
        elif status in ("queued", "processing"):
            project_start(project=project)  # a retried start changes nothing
        else:
            with pytest.raises(ApplicationError):
                project_start(project=project)

    @precondition(lambda self: self._has("queued"))
    @rule()
    def worker_claims(self) -> None:
        claimed = jobs.job_claim_next()
        if claimed is None:
            assert "queued" not in self.status.values()
            return
        assert self.status[claimed.name] == "queued"
        self.status[claimed.name] = "processing"

    @precondition(lambda self: self._has("processing"))
    @rule(data=st.data(), delivered=st.booleans())
    def run_ends(self, data: st.DataObject, delivered: bool) -> None:
        name = self._pick(data, "processing")
        project = self._project(name)
        if delivered:
            Project.objects.filter(
                pk=project.pk, status=Project.Status.PROCESSING
            ).update(status=Project.Status.DONE, finished_at=timezone.now())
            self.spent += self.held[name]
            self.status[name] = "done"
        else:
            jobs._finish_failed(project, code="engine_error", message="gave up")
            self.status[name] = "failed"
        self.held[name] = 0

    @precondition(lambda self: self._has("processing"))
    @rule(data=st.data())
    def worker_dies_and_is_retried(self, data: st.DataObject) -> None:
        name = self._pick(data, "processing")
        stale = timezone.now() - datetime.timedelta(hours=1)
        Project.objects.filter(token=self.token, name=name).update(
            heartbeat_at=stale, attempts=1
        )
        jobs.jobs_sweep()
        self.status[name] = "queued"

    @precondition(lambda self: self._has())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        name = self._pick(data)
        status = self.status[name]
        if status not in ("queued", "processing"):
            with pytest.raises(ApplicationError):
                project_cancel(project=self._project(name))
            return
        project_cancel(project=self._project(name))
        if status == "processing":
            self.spent += self.held[name]  # the owner stopped a run: kept
        self.held[name] = 0
        self.status[name] = "cancelled"

    @precondition(lambda self: self._has())
    @rule(data=st.data(), stored=st.booleans())
    def reprocess(self, data: st.DataObject, stored: bool) -> None:
        name = self._pick(data)
        project = self._project(name)
        if stored:  # the input zip the worker keeps after joining the parts
            project.input_path = default_storage.save(
                f"{project.storage_prefix}/input-rule.zip", ContentFile(ZIP)
            )
            Project.objects.filter(pk=project.pk).update(input_path=project.input_path)
        status = self.status[name]
        if status in ("queued", "processing"):
            project_reprocess(project=project)  # changes nothing
        elif status in ("done", "failed", "cancelled") and project.input_path:
            project_reprocess(project=project)
            self.status[name], self.held[name] = "queued", self.size[name]
        else:
            with pytest.raises(ApplicationError):
                project_reprocess(project=project)

    @precondition(lambda self: self._has())
    @rule(data=st.data())
    def reset(self, data: st.DataObject) -> None:
        name = self._pick(data)
        status = self.status[name]
        if status == "processing":
            with pytest.raises(ApplicationError):
                project_reset(project=self._project(name))
            return
        project_reset(project=self._project(name))
        self.held[name] = 0  # refunded if still held, else already spent or refunded
        self.status[name] = "created"

    @precondition(lambda self: self._has())
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        name = self._pick(data)
        status = self.status[name]
        project = self._project(name)
        if status == "processing":
            with pytest.raises(ApplicationError):
                project_delete(project=project)
            return
        project_delete(project=project)
        with pytest.raises(ApplicationError) as late:
            project_delete(project=project)
        assert late.value.status == 404  # a second, late delete
        del self.status[name], self.held[name], self.size[name]

    @invariant()
    def balance_is_the_ledger_and_the_rule(self) -> None:
        token = Token.objects.get(pk=self.token.pk)
        ledger = CreditLedgerEntry.objects.filter(token=token).aggregate(
            total=Sum("amount")
        )["total"]
        assert token.credit == ledger
        assert CREDIT - token.credit == self.spent + sum(self.held.values())


@pytest.mark.usefixtures("transactional_db")
def test_refunds_follow_the_rule_in_any_order() -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        RefundMachine,
        settings=settings(
            max_examples=100,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


def test_cancel_while_running_then_reset_keeps_the_charge(private_token) -> None:
    token = private_token[0]
    before = token.credit
    project = queue_project(token, ZIP, name="ran.zip", photos=3)
    assert jobs.job_claim_next().pk == project.pk

    project_cancel(project=project)
    project_reset(project=project)

    token.refresh_from_db()
    assert before - token.credit == len(ZIP)
    assert not CreditLedgerEntry.objects.filter(token=token, kind="refund").exists()
