"""What the storage backends add beyond ``default_storage``, behind one choice.

``OPENSCAN_STORAGE`` picks the backend (settings). Everything else reads and
writes through ``default_storage``; ``backend()`` answers what a plain Django
storage cannot: direct uploads (an S3 presigned POST or PUT, a one-time
Dropbox link), verification of stored parts (the Dropbox content hash),
download redirects (a presigned GET, a Dropbox shared link) and the part limit.
The backend is chosen here and nowhere else.
"""

from django.core.files.storage import default_storage
from storages.backends.dropbox import DropboxStorage as _BaseDropboxStorage
from storages.backends.s3 import S3Storage

from projects.storage.backends import (
    DropboxBackend,
    Kind,
    LocalBackend,
    S3Backend,
)
from projects.storage.direct import (
    DirectObject,
    DirectUpload,
    direct_name,
    direct_prefix,
)
from projects.storage.dropbox import DropboxContentHasher, DropboxStorage
from projects.storage.files import storage_delete_tree, temp_dir, temp_dir_remove

_LOCAL, _S3, _DROPBOX = LocalBackend(), S3Backend(), DropboxBackend()


def backend() -> LocalBackend:
    """The capabilities of ``default_storage``'s backend.

    Looked up per call, not cached: tests swap ``default_storage`` at run time.
    """
    if isinstance(default_storage, S3Storage):
        return _S3
    if isinstance(default_storage, _BaseDropboxStorage):
        return _DROPBOX
    return _LOCAL


__all__ = [
    "DirectObject",
    "DirectUpload",
    "DropboxContentHasher",
    "DropboxStorage",
    "Kind",
    "backend",
    "direct_name",
    "direct_prefix",
    "storage_delete_tree",
    "temp_dir",
    "temp_dir_remove",
]
