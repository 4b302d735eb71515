from __future__ import annotations

from pathlib import Path

import pytest
from openscan_upload.validate import (
    ERROR,
    NOTE,
    WARNING,
    Limits,
    TokenInfo,
    check_limits,
    inspect_file,
    jpeg_is_complete,
    validate_directory,
)

SMALL = Limits(min_pixels=0)
EQUIRECT_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
    b'22-rdf-syntax-ns#"><rdf:Description xmlns:GPano="http://ns.google.com/photos/1.0/'
    b'panorama/" GPano:ProjectionType="equirectangular"/></rdf:RDF></x:xmpmeta>'
)


def kinds(issues) -> dict[str, str]:
    return {issue.kind: issue.severity for issue in issues}


def test_a_good_photo_has_no_issues(tmp_path: Path, make_photo) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(make_photo())

    info, issues = inspect_file(path, Limits())

    assert issues == []
    assert (info.width, info.height, info.format) == (640, 480, "JPEG")
    assert (info.make, info.model, info.focal_length) == ("OpenScan", "Mini", 4.7)
    assert info.capture_time == "2024-01-31T10:20:30"


def test_png_named_jpg_is_an_extension_mismatch(tmp_path: Path, make_photo) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(make_photo(fmt="PNG"))

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {"ExtensionMismatch": ERROR}


def test_jpeg_with_an_unknown_extension_is_an_extension_mismatch(
    tmp_path: Path, make_photo
) -> None:
    path = tmp_path / "a.dat"
    path.write_bytes(make_photo())

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {"ExtensionMismatch": ERROR}
    assert "rename it to .jpg" in issues[0].message


def test_text_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_text("hello")

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {"NotAnImage": ERROR}


@pytest.mark.parametrize("name", ["a.tif", "b.heic", "c.CR2"])
def test_unsupported_photo_formats_are_errors(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"II*\x00" + b"\x00" * 100)

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {"UnsupportedFormat": ERROR}


def test_other_files_are_ignored_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("turntable settings")

    info, issues = inspect_file(path, SMALL)

    assert info is None
    assert kinds(issues) == {"Ignored": NOTE}


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"")

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {"EmptyFile": ERROR}


@pytest.mark.parametrize("keep", [0.5, 0.9, -2])
def test_truncated_jpeg_is_caught(tmp_path: Path, make_photo, keep: float) -> None:
    data = make_photo()
    cut = int(len(data) * keep) if keep > 0 else len(data) + int(keep)
    path = tmp_path / "a.jpg"
    path.write_bytes(data[:cut])

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {"CorruptImage": ERROR}


def test_jpeg_end_marker_of_the_exif_thumbnail_does_not_count(make_photo) -> None:
    data = make_photo()

    assert jpeg_is_complete(data)
    assert not jpeg_is_complete(data[:-2])


def test_file_over_the_size_limit_is_an_error(tmp_path: Path, make_photo) -> None:
    data = make_photo()
    path = tmp_path / "a.jpg"
    path.write_bytes(data)

    _, issues = inspect_file(path, Limits(max_file_size=len(data) - 1, min_pixels=0))

    assert kinds(issues) == {"FileTooLarge": ERROR}


def test_too_many_pixels_is_an_error(tmp_path: Path, make_photo) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(make_photo())

    _, issues = inspect_file(path, Limits(max_pixels=640 * 480 - 1))

    assert kinds(issues) == {"ResolutionTooLarge": ERROR}


def test_too_few_pixels_is_an_error(tmp_path: Path, make_photo) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(make_photo(size=(320, 240)))

    _, issues = inspect_file(path, Limits())

    assert kinds(issues) == {"ResolutionTooSmall": ERROR}


def test_decompression_bomb_is_refused_without_decoding(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path)

    _, issues = inspect_file(path, Limits())

    assert kinds(issues) == {"ResolutionTooLarge": ERROR}


def test_equirectangular_panorama_is_refused(tmp_path: Path, make_photo) -> None:
    path = tmp_path / "pano.jpg"
    path.write_bytes(make_photo(xmp=EQUIRECT_XMP))

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {"Equirectangular": ERROR}
    assert "perspective" in issues[0].message


def test_rotated_photo_is_noted(tmp_path: Path, make_photo) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(make_photo(orientation=6))

    info, issues = inspect_file(path, SMALL)

    assert info.orientation == 6
    assert kinds(issues) == {"Orientation": NOTE}


def test_missing_focal_length_is_a_warning(tmp_path: Path, make_photo) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(make_photo(focal=None))

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {"MissingFocalLength": WARNING}


@pytest.mark.parametrize(("level", "kind"), [(5, "Underexposed"), (250, "Overexposed")])
def test_badly_exposed_photo_is_a_warning(
    tmp_path: Path, make_photo, level: int, kind: str
) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(make_photo(brightness=level))

    _, issues = inspect_file(path, SMALL)

    assert kinds(issues) == {kind: WARNING}


def test_duplicates_are_found_by_content_not_name(tmp_path: Path, make_photo) -> None:
    (tmp_path / "a.jpg").write_bytes(make_photo(seed=1))
    (tmp_path / "b.jpg").write_bytes(make_photo(seed=2))
    (tmp_path / "c.jpg").write_bytes(make_photo(seed=1))

    result = validate_directory(tmp_path, Limits())

    assert [(i.kind, i.file) for i in result.issues] == [("Duplicate", "c.jpg")]
    assert "a.jpg" in result.issues[0].message
    assert [image.name for image in result.usable()] == ["a.jpg", "b.jpg"]


def test_blurry_photo_is_flagged_relative_to_the_set(
    tmp_path: Path, make_photo
) -> None:
    for index in range(4):
        (tmp_path / f"{index}.jpg").write_bytes(make_photo(seed=index))
    (tmp_path / "9.jpg").write_bytes(make_photo(seed=9, blur=4))

    result = validate_directory(tmp_path, Limits())

    assert [(i.kind, i.severity, i.file) for i in result.issues] == [
        ("Blurry", WARNING, "9.jpg")
    ]


def test_mixed_cameras_and_resolutions_are_warned(tmp_path: Path, make_photo) -> None:
    (tmp_path / "a.jpg").write_bytes(make_photo(seed=1))
    (tmp_path / "b.jpg").write_bytes(
        make_photo(seed=2, make="Canon", model="EOS", size=(800, 600))
    )

    result = validate_directory(tmp_path, Limits())

    assert kinds(result.issues) == {
        "MixedCameras": WARNING,
        "MixedResolutions": WARNING,
    }
    assert result.blocking() == []
    assert len(result.blocking(strict=True)) == 2


def test_strict_makes_file_warnings_block_that_file(tmp_path: Path, make_photo) -> None:
    (tmp_path / "a.jpg").write_bytes(make_photo(seed=1))
    (tmp_path / "b.jpg").write_bytes(make_photo(seed=2, focal=None))

    result = validate_directory(tmp_path, Limits())

    assert result.bad_files() == set()
    assert result.bad_files(strict=True) == {"b.jpg"}
    assert [image.name for image in result.usable(strict=True)] == ["a.jpg"]


def test_every_file_is_checked_before_deciding(tmp_path: Path, make_photo) -> None:
    (tmp_path / "a.jpg").write_bytes(make_photo(seed=1)[:500])
    (tmp_path / "b.png").write_bytes(make_photo(seed=2))
    (tmp_path / "c.jpg").write_bytes(make_photo(seed=3))
    (tmp_path / "d.jpg").write_text("x")

    result = validate_directory(tmp_path, Limits())

    assert sorted((i.kind, i.file) for i in result.blocking()) == [
        ("CorruptImage", "a.jpg"),
        ("ExtensionMismatch", "b.png"),
        ("NotAnImage", "d.jpg"),
    ]
    assert [image.name for image in result.usable()] == ["c.jpg"]


def test_empty_folder_has_no_images(tmp_path: Path) -> None:
    result = validate_directory(tmp_path, Limits())

    assert kinds(result.issues) == {"NoImages": ERROR}


def test_token_limits_are_checked(tmp_path: Path, make_photo) -> None:
    for index in range(3):
        (tmp_path / f"{index}.jpg").write_bytes(make_photo(seed=index))
    result = validate_directory(tmp_path, Limits())
    total = sum(image.size for image in result.images)

    issues = check_limits(
        result.images,
        TokenInfo(credit=total // 2, limit_filesize=total // 2, limit_photos=2),
    )

    assert kinds(issues) == {
        "TooManyPhotos": ERROR,
        "ProjectTooLarge": ERROR,
        "NotEnoughCredit": ERROR,
    }


def test_token_limits_of_zero_mean_unlimited_but_credit_still_counts(
    tmp_path: Path, make_photo
) -> None:
    (tmp_path / "a.jpg").write_bytes(make_photo())
    result = validate_directory(tmp_path, Limits())

    assert check_limits(result.images, TokenInfo(10**12, 0, 0)) == []
    assert kinds(check_limits(result.images, TokenInfo(0, 0, 0))) == {
        "NotEnoughCredit": ERROR
    }
    assert check_limits(result.images, TokenInfo(0, 0, 0), check_credit=False) == []


def test_hidden_files_and_sidecars_are_not_candidates(
    tmp_path: Path, make_photo
) -> None:
    (tmp_path / "a.jpg").write_bytes(make_photo())
    (tmp_path / ".openscan-upload.json").write_text("{}")
    (tmp_path / "openscan-manifest.json").write_text("{}")
    (tmp_path / "openscan-upload-report.json").write_text("{}")

    result = validate_directory(tmp_path, Limits())

    assert result.issues == []
    assert [image.name for image in result.images] == ["a.jpg"]
