import uuid

from django.db import models

from openscan_portal.models import TimeStampedModel
from tokens.models import Token


class Project(TimeStampedModel):
    """One image set sent by a client and everything made from it."""

    class Status(models.TextChoices):
        CREATED = "created", "Waiting for upload"
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    class Preset(models.TextChoices):
        FAST = "fast", "Fast"
        BALANCED = "balanced", "Balanced"
        QUALITY = "quality", "Quality"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token = models.ForeignKey(Token, on_delete=models.PROTECT, related_name="projects")
    # The client's name, e.g. "2024-01-31_10.20.30-my vase.zip": unique per token
    # (and per client network for the shared public token).
    name = models.CharField(max_length=255)
    # Public token: projects.clients.client_key of the network that created it;
    # empty for private tokens.
    client_key = models.CharField(max_length=40, blank=True, editable=False)
    photos = models.PositiveIntegerField()
    filesize = models.BigIntegerField()
    parts = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.CREATED
    )
    preset = models.CharField(
        max_length=16, choices=Preset.choices, default=Preset.BALANCED
    )
    research_consent = models.BooleanField(default=False)
    # Bumped by every (re)creation and reset so links of an earlier upload stop working.
    upload_generation = models.PositiveIntegerField(default=1)
    # Bytes charged for the current upload; set to 0 exactly once when refunded.
    charged = models.BigIntegerField(default=0)
    charged_at = models.DateTimeField(null=True, blank=True)
    image_count = models.PositiveIntegerField(null=True, blank=True)
    input_path = models.CharField(max_length=500, blank=True)
    result_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    # A random key that opens the viewer without an account; empty when not shared.
    share_key = models.CharField(max_length=64, blank=True, db_index=True)
    # Whether the share link also opens the original photos (the owner chooses).
    share_photos = models.BooleanField(default=False)
    # Scheme and host the project was created or queued through ("https://host:port"):
    # the base of links in its e-mails when OPENSCAN_PUBLIC_URL is empty, since the
    # worker that sends them has no request.
    site_url = models.CharField(max_length=200, blank=True, editable=False)
    # Real size, set by the owner from two points on the model and their distance:
    # millimetres per model unit, null while unset. ``scale`` keeps the reference
    # (points, distance), the dimensions and the rescaled downloads' storage.
    mm_per_unit = models.FloatField(null=True, blank=True)
    scale = models.JSONField(default=dict, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    notify_count = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # CPU seconds spent checking this project's zips, over every start and reset:
    # the budget (OPENSCAN_ZIP_CHECK_CPU_SECONDS) is per project, not per attempt.
    check_cpu_seconds = models.FloatField(default=0, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["token", "client_key", "name"],
                name="project_name_unique_per_token_client",
            ),
            models.CheckConstraint(
                condition=models.Q(charged__gte=0), name="project_charged_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(parts__gte=1), name="project_parts_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(mm_per_unit__isnull=True)
                | models.Q(mm_per_unit__gt=0),
                name="project_mm_per_unit_positive",
            ),
        ]
        indexes = [models.Index(fields=["status", "queued_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_terminal(self) -> bool:
        return self.status in {
            self.Status.DONE,
            self.Status.FAILED,
            self.Status.CANCELLED,
            self.Status.EXPIRED,
        }

    @property
    def storage_prefix(self) -> str:
        return f"projects/{self.id.hex}"


class UploadChunk(models.Model):
    """Bytes of one part of a project's zip, stored as one object.

    A part is the concatenation of its chunks in offset order. A whole-part POST
    (the wire protocol) replaces all chunks of the part; a resumable PATCH adds
    one at the current end. Storage backends cannot append, hence chunks.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="chunks"
    )
    generation = models.PositiveIntegerField()
    part = models.PositiveIntegerField()
    offset = models.BigIntegerField()
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "generation", "part", "offset"],
                name="chunk_unique_offset",
            )
        ]
        ordering = ["part", "offset"]

    def __str__(self) -> str:
        return f"{self.project_id} part {self.part} @{self.offset} ({self.size} B)"
