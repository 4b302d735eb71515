"""What the user sees: the validation summary, the report file, progress and events.

In the default mode messages go to stdout and progress bars (tqdm) to stderr.
With `--json` stdout carries only newline-delimited JSON events, one object per
line with an `event` key, for rigs and scripts; no bars are drawn.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from . import __version__
from .state import now_iso
from .validate import ERROR, NOTE, WARNING, Issue, ValidationResult

REPORT_NAME = "openscan-upload-report.json"
EXAMPLES_PER_KIND = 5
JSON_PROGRESS_INTERVAL = 1.0


def group_issues(issues: list[Issue]) -> dict[str, dict[str, list[Issue]]]:
    """Issues by severity, then by kind, in a stable order."""
    grouped: dict[str, dict[str, list[Issue]]] = {ERROR: {}, WARNING: {}, NOTE: {}}
    for issue in sorted(issues, key=lambda item: (item.kind, item.file or "")):
        grouped.setdefault(issue.severity, {}).setdefault(issue.kind, []).append(issue)
    return grouped


def format_summary(result: ValidationResult, strict: bool = False) -> str:
    """The human summary: counts first, then each kind with a few examples."""
    photos = len({image.name for image in result.images})
    bad = result.bad_files(strict)
    warned = {
        issue.file
        for issue in result.issues
        if issue.severity == WARNING and issue.file is not None
    } - bad
    lines = [
        f"Checked {photos} photo(s): "
        f"{photos - len(bad & {i.name for i in result.images})} "
        f"usable, {len(bad)} file(s) with errors, {len(warned)} with warnings."
    ]
    grouped = group_issues(result.issues)
    titles = {
        ERROR: "Errors",
        WARNING: "Warnings (--strict makes these errors)"
        if not strict
        else "Warnings (errors with --strict)",
        NOTE: "Notes",
    }
    for severity in (ERROR, WARNING, NOTE):
        kinds = grouped.get(severity, {})
        if not kinds:
            continue
        lines.append(f"{titles[severity]}:")
        for kind, items in kinds.items():
            lines.append(f"  {kind} ({len(items)})")
            for issue in items[:EXAMPLES_PER_KIND]:
                prefix = f"{issue.file}: " if issue.file else ""
                lines.append(f"    {prefix}{issue.message}")
            if len(items) > EXAMPLES_PER_KIND:
                lines.append(
                    f"    ... and {len(items) - EXAMPLES_PER_KIND} more (see the "
                    "report)"
                )
    return "\n".join(lines)


def counts_by_kind(issues: list[Issue]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for issue in issues:
        counts[issue.kind] = counts.get(issue.kind, 0) + 1
    return dict(sorted(counts.items()))


def write_report(
    path: Path,
    directory: Path,
    result: ValidationResult,
    strict: bool,
    selected: list[str] | None = None,
) -> None:
    """Write the full validation report as JSON (every issue, every photo)."""
    report = {
        "tool_version": __version__,
        "directory": str(directory),
        "created_at": now_iso(),
        "strict": strict,
        "summary": {
            "photos": len(result.images),
            "errors": sum(1 for issue in result.blocking(strict)),
            "warnings": sum(1 for issue in result.issues if issue.severity == WARNING),
            "by_kind": counts_by_kind(result.issues),
        },
        "issues": [issue.as_dict() for issue in result.issues],
        "photos": [image.as_dict() for image in result.images],
        "selected": selected,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    tmp.replace(path)


class Bar:
    """A progress bar: tqdm for people, throttled events in --json mode."""

    def __init__(
        self,
        output: Output,
        label: str,
        total: int | None,
        unit: str = "B",
        initial: int = 0,
    ) -> None:
        self.output = output
        self.label = label
        self.total = total
        self.count = initial
        self._last_event = 0.0
        self._tqdm: tqdm | None = None
        if not output.json_mode and not output.quiet:
            self._tqdm = tqdm(
                total=total,
                initial=initial,
                desc=label,
                unit=unit,
                unit_scale=unit == "B",
                unit_divisor=1024 if unit == "B" else 1000,
                file=output.err,
                dynamic_ncols=True,
                leave=True,
                # tqdm's own default hides bars when stderr is not a terminal.
                disable=None,
            )

    def update(self, count: int) -> None:
        self.count += count
        if self._tqdm is not None:
            self._tqdm.update(count)
        elif self.output.json_mode:
            now = time.monotonic()
            if now - self._last_event >= JSON_PROGRESS_INTERVAL:
                self._last_event = now
                self.output.event(
                    "progress", stage=self.label, done=self.count, total=self.total
                )

    def set_description(self, text: str) -> None:
        self.label = text
        if self._tqdm is not None:
            self._tqdm.set_description_str(text)

    def reset(self, total: int | None, done: int = 0) -> None:
        self.total = total
        self.count = done
        if self._tqdm is not None:
            self._tqdm.reset(total=total)
            self._tqdm.update(done)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.output.json_mode:
            self.output.event(
                "progress", stage=self.label, done=self.count, total=self.total
            )

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Output:
    """Where messages and events go."""

    def __init__(
        self,
        json_mode: bool = False,
        quiet: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def say(self, message: str) -> None:
        """A message for a person (suppressed in --json and --quiet mode)."""
        if not self.json_mode and not self.quiet:
            print(message, file=self.out, flush=True)

    def warn(self, message: str) -> None:
        """A message that matters even with --quiet (errors, what to do next)."""
        if self.json_mode:
            self.event("message", level="error", text=message)
        else:
            print(message, file=self.err, flush=True)

    def event(self, name: str, **payload: Any) -> None:
        if self.json_mode:
            print(
                json.dumps({"event": name, **payload}, sort_keys=True, default=str),
                file=self.out,
                flush=True,
            )

    def bar(
        self, label: str, total: int | None, unit: str = "B", initial: int = 0
    ) -> Bar:
        return Bar(self, label, total, unit, initial)
