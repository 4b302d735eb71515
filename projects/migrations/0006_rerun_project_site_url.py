from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0005_project_share_photos"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="site_url",
            field=models.CharField(blank=True, editable=False, max_length=200),
        ),
    ]
