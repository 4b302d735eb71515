"""Zip checks before anything is unpacked (no Django needed)."""

import io
import re
import stat
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from projects.archive import ArchiveError, ArchiveLimits, extract_images, inspect_zip
from tests.images import (
    crafted_zip,
    jpeg_bytes,
    png_bytes,
    png_header_only,
    zip_bytes,
    zip_with_directory_of,
)

LIMITS = ArchiveLimits(
    max_entries=100,
    max_uncompressed=50_000_000,
    max_photos=10,
    max_image_pixels=120_000_000,
)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "in.zip"
    path.write_bytes(data)
    return path


def test_a_good_set_passes_with_sidecars_and_os_junk_ignored(tmp_path):
    data = zip_bytes(
        {
            "scan/IMG_1.JPG": jpeg_bytes(seed=1),
            "scan/IMG_2.jpeg": jpeg_bytes(seed=2),
            "scan/IMG_3.png": png_bytes(),
            "scan/rig.json": b"{}",
            "__MACOSX/scan/._IMG_1.JPG": b"junk",
            "scan/": b"",
        }
    )
    summary = inspect_zip(_write(tmp_path, data), limits=LIMITS)
    assert summary.images == ("scan/IMG_1.JPG", "scan/IMG_2.jpeg", "scan/IMG_3.png")
    assert summary.other_files == ("scan/rig.json",)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../x.jpg", "outside the archive"),
        ("a/../../x.jpg", "outside the archive"),
        ("/abs.jpg", "absolute path"),
        ("C:/x.jpg", "absolute path"),
        ("..\\x.jpg", "backslashes"),
    ],
)
def test_zip_slip_names_are_refused_by_name(tmp_path, name, words):
    data = zip_bytes({"ok.jpg": jpeg_bytes(), name: jpeg_bytes(seed=3)})
    with pytest.raises(ArchiveError, match=words):
        inspect_zip(_write(tmp_path, data), limits=LIMITS)


def test_symlink_entries_are_refused(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("ok.jpg", jpeg_bytes())
        info = zipfile.ZipInfo("link.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match=r"'link\.jpg' is a symbolic link"):
        inspect_zip(_write(tmp_path, out.getvalue()), limits=LIMITS)


def test_duplicate_names_are_refused(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("a.jpg", jpeg_bytes())
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("a.jpg", jpeg_bytes(seed=2))
    with pytest.raises(ArchiveError, match="appears twice"):
        inspect_zip(_write(tmp_path, out.getvalue()), limits=LIMITS)


def test_zip_bomb_is_refused_from_the_directory_in_bounded_time(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jpg", jpeg_bytes())
        zf.writestr("zeros.bin", b"\0" * 100 * 1024 * 1024)
    assert len(out.getvalue()) < 200_000
    start = time.perf_counter()
    with pytest.raises(ArchiveError, match="unpacks to"):
        inspect_zip(_write(tmp_path, out.getvalue()), limits=LIMITS)
    assert time.perf_counter() - start < 5  # a guard against inflating, not a benchmark


def test_well_compressed_entry_within_size_limit_is_still_refused(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jpg", jpeg_bytes())
        zf.writestr("zeros.bin", b"\0" * 20 * 1024 * 1024)
    with pytest.raises(ArchiveError, match="compressed suspiciously well"):
        inspect_zip(_write(tmp_path, out.getvalue()), limits=LIMITS)


def test_too_many_entries_and_too_many_photos(tmp_path):
    many = zip_bytes({f"f{i}.txt": b"x" for i in range(101)})
    with pytest.raises(ArchiveError, match="101 entries"):
        inspect_zip(_write(tmp_path, many), limits=LIMITS)
    photos = zip_bytes({f"p{i}.jpg": jpeg_bytes(seed=i) for i in range(11)})
    with pytest.raises(ArchiveError, match="11 photos; this project allows at most 10"):
        inspect_zip(_write(tmp_path, photos), limits=LIMITS)


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_pixel_floods_are_refused_at_the_header(tmp_path, side):
    data = zip_bytes({"ok.jpg": jpeg_bytes(), "flood.png": png_header_only(side, side)})
    limits = ArchiveLimits(
        max_entries=100,
        max_uncompressed=50_000_000,
        max_photos=10,
        max_image_pixels=50_000_000,
    )
    with pytest.raises(ArchiveError, match=r"'flood\.png' (has|declares)"):
        inspect_zip(_write(tmp_path, data), limits=limits)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"PK\x03\x04 not a photo", "not one"),
        (b"<html>hi</html>", "not one"),
        (jpeg_bytes()[:300], "cannot be decoded"),
    ],
)
def test_mislabelled_and_truncated_photos_are_refused(tmp_path, content, words):
    data = zip_bytes({"ok.jpg": jpeg_bytes(), "bad.jpg": content})
    with pytest.raises(ArchiveError, match=f"'bad.jpg' .*{words}"):
        inspect_zip(_write(tmp_path, data), limits=LIMITS)


def test_not_a_zip_and_no_photos(tmp_path):
    with pytest.raises(ArchiveError, match="not a valid zip"):
        inspect_zip(_write(tmp_path, b"hello"), limits=LIMITS)
    with pytest.raises(ArchiveError, match="no JPEG or PNG"):
        inspect_zip(_write(tmp_path, zip_bytes({"notes.txt": b"x"})), limits=LIMITS)


def test_extract_writes_only_generated_names_inside_dest(tmp_path):
    data = zip_bytes(
        {"deep/dir/IMG 1.JPG": jpeg_bytes(seed=1), "IMG_2.jpg": jpeg_bytes(seed=2)}
    )
    dest = tmp_path / "out"
    paths = extract_images(_write(tmp_path, data), dest, limits=LIMITS)
    assert [p.name for p in paths] == ["0000_IMG_2.jpg", "0001_IMG_1.jpg"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "0000_IMG_2.jpg",
        "0001_IMG_1.jpg",
        "in.zip",
    ]


def test_a_100_megapixel_jpeg_passes_the_120_megapixel_limit(tmp_path):
    """Pillow warns above 89 MP; that warning is not the portal's limit."""
    out = io.BytesIO()
    Image.new("L", (10_000, 10_000), 128).save(out, "JPEG", quality=50)
    data = zip_bytes({"IMG_1.jpg": out.getvalue(), "IMG_2.jpg": jpeg_bytes(seed=2)})
    summary = inspect_zip(_write(tmp_path, data), limits=LIMITS)
    assert summary.images == ("IMG_1.jpg", "IMG_2.jpg")


def test_large_uniform_pngs_are_checked_from_their_chunks_not_decoded(tmp_path):
    """88 MP PNGs below the limit pass; their pixels are never inflated."""
    out = io.BytesIO()
    Image.new("RGB", (10_800, 8_150), (90, 90, 90)).save(out, "PNG", compress_level=1)
    png = out.getvalue()
    files = {f"IMG_{i:02d}.png": png for i in range(20)}
    limits = ArchiveLimits(
        max_entries=100,
        max_uncompressed=20 * len(png) + 1,
        max_photos=20,
        max_image_pixels=120_000_000,
    )
    summary = inspect_zip(_write(tmp_path, zip_bytes(files)), limits=limits)
    assert len(summary.images) == 20
    # a PNG whose data chunk is damaged is still caught by its CRC
    broken = bytearray(png)
    idat = broken.index(b"IDAT")
    broken[idat + 10] ^= 0xFF
    with pytest.raises(ArchiveError, match=r"'IMG_00\.png' cannot be decoded"):
        inspect_zip(
            _write(tmp_path, zip_bytes({"IMG_00.png": bytes(broken)})), limits=limits
        )


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("encrypted", "'IMG_0000.jpg' is encrypted"),
        ("method9", "'IMG_0000.jpg' uses compression method 9"),
        (
            "name_mismatch",
            "'IMG_0000.jpg' is damaged in the zip (File name in directory",
        ),
        ("bad_magic", "'IMG_0000.jpg' is damaged in the zip (Bad magic number"),
        ("bad_crc", "'IMG_0000.jpg' is damaged in the zip (Bad CRC-32"),
    ],
)
def test_crafted_entries_are_refused_by_name(tmp_path, kind, reason):
    with pytest.raises(ArchiveError, match=re.escape(reason)):
        inspect_zip(_write(tmp_path, crafted_zip(kind)), limits=LIMITS)


def test_a_tiny_non_photo_entry_with_a_bad_crc_is_refused(tmp_path):
    data = zip_bytes({"notes.txt": b"hi", "IMG_1.jpg": jpeg_bytes(seed=1)})
    central = data.index(b"PK\x01\x02")
    data = (
        data[:14]
        + b"\0\0\0\0"
        + data[18 : central + 16]
        + b"\0\0\0\0"
        + data[central + 20 :]
    )
    with pytest.raises(
        ArchiveError, match=r"'notes\.txt' is damaged in the zip \(Bad CRC"
    ):
        inspect_zip(_write(tmp_path, data), limits=LIMITS)


def test_a_million_entry_directory_is_refused_before_it_is_parsed(tmp_path):
    with pytest.raises(ArchiveError, match="has 1000000 entries; at most 100"):
        inspect_zip(_write(tmp_path, zip_with_directory_of(1_000_000)), limits=LIMITS)


def test_an_oversized_directory_is_refused_before_it_is_parsed(tmp_path):
    data = zip_with_directory_of(90)  # 90 entries declared, within the limit...
    eocd = data.rindex(b"PK\x06\x06")
    # ...but a directory size far beyond what 100 entries need.
    data = data[: eocd + 40] + (10**9).to_bytes(8, "little") + data[eocd + 48 :]
    with pytest.raises(ArchiveError, match="directory is 1000000000 bytes"):
        inspect_zip(_write(tmp_path, data), limits=LIMITS)
