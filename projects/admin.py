from django.contrib import admin

from projects.models import Project, UploadChunk


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "token",
        "status",
        "photos",
        "filesize",
        "charged",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "preset", "token__kind"]
    search_fields = ["name", "token__email", "id"]
    readonly_fields = [f.name for f in Project._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(UploadChunk)
class UploadChunkAdmin(admin.ModelAdmin):
    list_display = ["project", "generation", "part", "offset", "size", "created_at"]
    readonly_fields = [f.name for f in UploadChunk._meta.fields]
