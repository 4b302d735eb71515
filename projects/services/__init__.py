"""Writes for projects; one module per concern, re-exported here."""

from projects.services.projects import (
    project_cancel,
    project_create,
    project_delete,
    project_refund,
    project_reset,
    project_share,
    project_start,
    storage_delete_tree,
)
from projects.services.uploads import (
    part_append,
    part_received,
    part_replace,
    parts_received,
    uploads_part_limit,
)

__all__ = [
    "part_append",
    "project_cancel",
    "part_received",
    "part_replace",
    "parts_received",
    "project_create",
    "project_delete",
    "project_refund",
    "project_reset",
    "project_share",
    "project_start",
    "storage_delete_tree",
    "uploads_part_limit",
]
