"""Plain file chores on ``default_storage`` and the worker's local scratch space."""

import shutil
import tempfile
from pathlib import Path

from django.core.files.storage import default_storage


def storage_delete_tree(prefix: str) -> None:
    """Delete every file under ``prefix`` in the default storage."""
    try:
        dirs, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotImplementedError):
        return
    for name in files:
        default_storage.delete(f"{prefix}/{name}")
    for sub in dirs:
        storage_delete_tree(f"{prefix}/{sub}")


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="openscan-"))


def temp_dir_remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
