"""Writes for projects; one module per concern, re-exported here."""

from projects.services.projects import (
    REPROCESSABLE,
    project_cancel,
    project_create,
    project_delete,
    project_refund,
    project_reprocess,
    project_reset,
    project_share,
    project_start,
)
from projects.services.scale import (
    project_scale_change,
    project_scale_clear,
    project_scale_set,
)
from projects.services.uploads import (
    part_append,
    part_received,
    part_replace,
    parts_received,
    uploads_part_limit,
)

__all__ = [
    "REPROCESSABLE",
    "part_append",
    "part_received",
    "part_replace",
    "parts_received",
    "project_cancel",
    "project_create",
    "project_delete",
    "project_refund",
    "project_reprocess",
    "project_reset",
    "project_scale_change",
    "project_scale_clear",
    "project_scale_set",
    "project_share",
    "project_start",
    "uploads_part_limit",
]
