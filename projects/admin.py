from django.contrib import admin
from django.utils.html import format_html

from openscan_portal.units import bytes_size
from projects.models import Project, UploadChunk


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "token",
        "status",
        "photos",
        "size",
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

    @admin.display(description="zip size", ordering="filesize")
    def size(self, obj: Project) -> str:
        return format_html(
            '<span title="{} bytes">{}</span>',
            f"{obj.filesize:,}",
            bytes_size(obj.filesize),
        )


@admin.register(UploadChunk)
class UploadChunkAdmin(admin.ModelAdmin):
    list_display = ["project", "generation", "part", "offset", "size", "created_at"]
    readonly_fields = [f.name for f in UploadChunk._meta.fields]
