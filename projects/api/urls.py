from django.urls import path

from projects.api import views

app_name = "projects-api"

urlpatterns = [
    path("", views.ApiRootApi.as_view(), name="root"),
    path("projects/", views.ProjectListCreateApi.as_view(), name="list"),
    path(
        "projects/<uuid:project_id>/", views.ProjectDetailApi.as_view(), name="detail"
    ),
    path(
        "projects/<uuid:project_id>/status/",
        views.ProjectStatusApi.as_view(),
        name="status",
    ),
    path(
        "projects/<uuid:project_id>/start/",
        views.ProjectStartApi.as_view(),
        name="start",
    ),
    path(
        "projects/<uuid:project_id>/scale/",
        views.ProjectScaleApi.as_view(),
        name="scale",
    ),
    path(
        "projects/<uuid:project_id>/notify/",
        views.ProjectNotifyApi.as_view(),
        name="notify",
    ),
    path(
        "projects/<uuid:project_id>/cancel/",
        views.ProjectCancelApi.as_view(),
        name="cancel",
    ),
    path(
        "projects/<uuid:project_id>/reprocess/",
        views.ProjectReprocessApi.as_view(),
        name="reprocess",
    ),
    path(
        "projects/<uuid:project_id>/reset/",
        views.ProjectResetApi.as_view(),
        name="reset",
    ),
    path(
        "projects/<uuid:project_id>/parts/<int:part>/",
        views.PartUploadApi.as_view(),
        name="part",
    ),
    path(
        "projects/<uuid:project_id>/parts/<int:part>/direct/",
        views.PartDirectUploadApi.as_view(),
        name="part-direct",
    ),
]
