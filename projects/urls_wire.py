"""Root-level paths of the OpenScanCloud wire protocol
(no trailing slash, no prefix)."""

import re

from django.urls import path, re_path

from projects import wire
from projects.pipeline.types import RESULT_FILES, SCALED_FILES

# Only the files of the output contract and their real-size copies can be asked for.
_RESULT_NAME = "|".join(
    re.escape(f.name) for f in (*RESULT_FILES, *SCALED_FILES.values())
)

app_name = "wire"

urlpatterns = [
    path("status", wire.status, name="status"),
    path("getTokenInfo", wire.get_token_info, name="getTokenInfo"),
    path("createProject", wire.create_project, name="createProject"),
    path("startProject", wire.start_project, name="startProject"),
    path("getProjectInfo", wire.get_project_info, name="getProjectInfo"),
    path("resetProject", wire.reset_project, name="resetProject"),
    path("requestToken", wire.request_token, name="requestToken"),
    path("getQueueEstimate", wire.get_queue_estimate, name="getQueueEstimate"),
    re_path(r"^u/(?P<signed>[A-Za-z0-9_.:-]+)$", wire.upload_part, name="upload"),
    re_path(
        rf"^d/(?P<signed>[A-Za-z0-9_.:-]+)/(?P<filename>{_RESULT_NAME})$",
        wire.download,
        name="download",
    ),
]
