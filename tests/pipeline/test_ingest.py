"""Ingest: unusable files are listed with reasons, zips are unpacked safely."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from projects.pipeline import PipelineError, ReconstructionRequest
from projects.pipeline.steps.ingest import collect_input, ingest
from projects.pipeline.types import ErrorCode


def _photo(
    path: Path, *, focal_35mm: int | None = 35, size: tuple[int, int] = (640, 480)
) -> None:
    rng = np.random.default_rng(len(path.name))
    exif = Image.Exif()
    if focal_35mm:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        path, exif=exif
    )


def test_ingest_lists_truncated_and_fake_jpegs_with_reasons(tmp_path: Path) -> None:
    """A truncated JPEG and a text file named .jpg are unusable, the rest proceed."""
    # given
    for i in range(3):
        _photo(tmp_path / f"ok{i}.jpg")
    whole = io.BytesIO()
    Image.new("RGB", (640, 480), "red").save(whole, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (tmp_path / "notes.jpg").write_text("not a photo")
    paths = collect_input(tmp_path, tmp_path / "x")
    # when
    result = ingest(paths, tmp_path / "work", max_pixels=40_000_000, max_images=100)
    # then
    assert [im.name for im in result.images] == ["ok0.jpg", "ok1.jpg", "ok2.jpg"]
    reasons = {bad.name: bad.reason for bad in result.unusable}
    assert set(reasons) == {"cut.jpg", "notes.jpg"}
    assert reasons["notes.jpg"] == "not a readable image file"
    assert reasons["cut.jpg"].startswith("damaged or truncated image")


def test_focal_prior_comes_from_the_35mm_equivalent(tmp_path: Path) -> None:
    """EXIF 35 mm focal length becomes a pixel focal length; no EXIF falls back."""
    _photo(tmp_path / "a.jpg", focal_35mm=35)
    _photo(tmp_path / "b.jpg", focal_35mm=None)
    _photo(tmp_path / "c.jpg", focal_35mm=35)
    result = ingest(
        collect_input(tmp_path, tmp_path / "x"),
        tmp_path / "w",
        max_pixels=10**8,
        max_images=10,
    )
    by_name = {im.name: im for im in result.images}
    assert by_name["a.jpg"].focal_source == "exif_35mm"
    assert by_name["a.jpg"].focal_px == pytest.approx(35 * 800 / 43.27, rel=1e-6)
    assert by_name["b.jpg"].focal_source == "default"
    assert result.single_camera is False


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A photo stored sideways with Orientation=6 is written upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (640, 480), "blue").save(tmp_path / "r.jpg", exif=exif)
    for i in range(2):
        _photo(tmp_path / f"p{i}.jpg")
    result = ingest(
        collect_input(tmp_path, tmp_path / "x"),
        tmp_path / "w",
        max_pixels=10**8,
        max_images=10,
    )
    rotated = next(im for im in result.images if im.name == "r.jpg")
    assert (rotated.width, rotated.height) == (480, 640)


def test_zip_members_are_flattened_to_safe_names(tmp_path: Path) -> None:
    """Members with folders or '..' are extracted under the target, never outside."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../evil.jpg", buffer.getvalue())
        zf.writestr("sub/dir/a.jpg", buffer.getvalue())
        zf.writestr("readme.txt", "ignored")
    paths = collect_input(archive, tmp_path / "unpacked")
    assert sorted(p.name for p in paths) == ["a.jpg", "evil.jpg"]
    assert all(p.parent == tmp_path / "unpacked" for p in paths)


def test_no_readable_photos_is_an_error(tmp_path: Path) -> None:
    """Only broken files: the whole upload is refused with a sentence."""
    (tmp_path / "a.jpg").write_text("nope")
    with pytest.raises(PipelineError) as caught:
        ingest((tmp_path / "a.jpg",), tmp_path / "w", max_pixels=10**8, max_images=10)
    assert caught.value.code == "unreadable_images"
    assert caught.value.message == "None of the 1 files could be read as a photo."


def test_renamed_photos_keep_their_name_in_the_users_zip(tmp_path: Path) -> None:
    """Spaces, PNG to JPG and a name in two folders: each keeps its zip path."""
    # given
    for name in ("a b.png", "x.jpg"):
        _photo(tmp_path / name)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "a b.png", "left/a b.png")
        zf.write(tmp_path / "a b.png", "right/a b.png")
        zf.write(tmp_path / "x.jpg", "x.jpg")
    request = ReconstructionRequest.from_input_path(
        archive, out_dir=tmp_path / "out", workdir=tmp_path / "work"
    )
    # when
    result = ingest(
        request.images,
        request.workdir,
        max_pixels=10**8,
        max_images=10,
        sources=request.sources,
    )
    # then
    sources = {im.source: im.name for im in result.images}
    assert sorted(sources) == ["left/a b.png", "right/a b.png", "x.jpg"]
    assert len(set(sources.values())) == 3
    assert sources["x.jpg"] == "x.jpg"
    assert all(name.endswith(".jpg") for name in sources.values())


def test_too_many_photos_has_its_own_code(tmp_path: Path) -> None:
    """Too many photos is not 'no images': its own code, with its own advice."""
    for i in range(3):
        _photo(tmp_path / f"p{i}.jpg")
    with pytest.raises(PipelineError) as caught:
        ingest(
            collect_input(tmp_path, tmp_path / "x"),
            tmp_path / "w",
            max_pixels=10**8,
            max_images=2,
        )
    assert caught.value.code == ErrorCode.TOO_MANY_IMAGES
    assert "more photos than one project takes" in caught.value.code.advice


def test_a_zip_over_8_gb_has_its_own_code(tmp_path: Path, monkeypatch) -> None:
    _photo(tmp_path / "p.jpg")
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "p.jpg", "p.jpg")
    monkeypatch.setattr("projects.pipeline.steps.ingest.MAX_ZIP_BYTES", 10)
    with pytest.raises(PipelineError) as caught:
        collect_input(archive, tmp_path / "x")
    assert caught.value.code == ErrorCode.ARCHIVE_TOO_LARGE


def test_every_error_code_has_advice() -> None:
    assert [code for code in ErrorCode if len(code.advice) < 20] == []
