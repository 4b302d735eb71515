"""Periodic background tasks, created idempotently at every start."""

from django_q.models import Schedule

# name -> (dotted task path, minutes between runs)
SCHEDULES: dict[str, tuple[str, int]] = {
    "openscan:sweep": ("projects.tasks.jobs_sweep", 1),
    "openscan:expire": ("projects.tasks.projects_expire", 60),
}


def schedules_ensure() -> list[str]:
    """Create or update every schedule in SCHEDULES; remove
    ours that are no longer listed."""
    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
    Schedule.objects.filter(name__startswith="openscan:").exclude(
        name__in=SCHEDULES
    ).delete()
    return sorted(SCHEDULES)
