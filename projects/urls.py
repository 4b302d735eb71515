from django.urls import path

from projects import views

app_name = "projects"

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/", views.project_list, name="list"),
    path("projects/new/", views.project_new, name="new"),
    path("projects/<uuid:project_id>/", views.project_detail, name="detail"),
    path("projects/<uuid:project_id>/share/", views.project_share, name="share"),
    path("projects/<uuid:project_id>/scale/", views.project_scale, name="scale"),
    path(
        "projects/<uuid:project_id>/reprocess/",
        views.project_reprocess,
        name="reprocess",
    ),
    path(
        "projects/<uuid:project_id>/<str:action>/",
        views.project_action,
        name="action",
    ),
    path(
        "projects/<uuid:project_id>/files/<str:name>", views.project_file, name="file"
    ),
    path(
        "projects/<uuid:project_id>/photos/<path:name>",
        views.project_photo,
        name="photo",
    ),
    path("s/<str:share_key>/", views.shared, name="shared"),
    path("s/<str:share_key>/embed/", views.shared_embed, name="shared-embed"),
    path("s/<str:share_key>/files/<str:name>", views.shared_file, name="shared-file"),
    path(
        "s/<str:share_key>/photos/<path:name>", views.shared_photo, name="shared-photo"
    ),
]
