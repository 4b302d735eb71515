"""The layering rules hold: the pipeline has no Django, tokens never import projects."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]["contracts"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(contracts)} kept, 0 broken" in result.stdout


def test_importing_the_pipeline_and_its_runner_loads_no_engine():
    # A fresh interpreter: the suite's own process may have loaded the engine.
    code = (
        "import sys, projects.pipeline, projects.pipeline.runner;print(sorted(m for "
        "m in ('pycolmap', 'open3d', 'cv2', 'trimesh') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_reconstruct_is_still_the_public_entry_point():
    import projects.pipeline
    from projects.pipeline import orchestrate

    assert projects.pipeline.reconstruct is orchestrate.reconstruct


def test_the_output_contract_feeds_the_archive_viewer_and_download_links():
    from django.urls import NoReverseMatch, reverse

    from projects import portal
    from projects.pipeline.types import RESULT_FILES

    names = {f.name for f in RESULT_FILES}
    assert "texture.png" not in names
    assert set(portal.VIEWER_FILES) == {f.name for f in RESULT_FILES if f.in_viewer}
    for name in names:
        reverse("wire:download", kwargs={"signed": "x", "filename": name})
    with pytest.raises(NoReverseMatch):
        reverse("wire:download", kwargs={"signed": "x", "filename": "texture.png"})


def test_the_architecture_note_names_every_import_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]["contracts"]
    note = (ROOT / "docs" / "architecture.md").read_text()
    assert [c["name"] for c in contracts if c["name"] not in note] == []
