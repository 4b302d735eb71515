from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from openscan_upload.packing import (
    MAX_PART_SIZE,
    PartReader,
    build_zip,
    part_ranges,
    read_part,
    split_parts,
)
from openscan_upload.tagging import (
    Angles,
    build_block,
    encode_block,
    load_manifest,
    read_description,
    tag_image,
)
from openscan_upload.validate import Limits, validate_directory
from PIL import Image


def test_block_is_compact_json_with_sorted_keys(tmp_path: Path, make_photo) -> None:
    (tmp_path / "a.jpg").write_bytes(make_photo())
    info = validate_directory(tmp_path, Limits()).images[0]

    text = encode_block(
        build_block("vase.zip", 3, info, Angles(turntable=45.0, tilt=-10.0))
    )

    assert text == (
        '{"openscan":{"capture_time":"2024-01-31T10:20:30","file":"a.jpg","index":3,'
        '"make":"OpenScan","model":"Mini","photo_id":"' + info.sha256[:16] + '",'
        '"project":"vase.zip","tilt":-10.0,"turntable":45.0,"v":1}}'
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_tagging_is_deterministic_and_keeps_pixels_and_exif(
    make_photo, fmt: str
) -> None:
    original = make_photo(fmt=fmt, orientation=3)
    text = '{"openscan":{"v":1}}'

    first = tag_image(original, text)
    second = tag_image(original, text)

    assert first == second
    assert read_description(first) == text
    import io

    with (
        Image.open(io.BytesIO(first)) as tagged,
        Image.open(io.BytesIO(original)) as source,
    ):
        assert tagged.tobytes() == source.tobytes()
        exif = tagged.getexif()
        assert (exif[0x010F], exif[0x0112]) == ("OpenScan", 3)
        assert float(exif.get_ifd(0x8769)[0x920A]) == 4.7


def test_tagging_replaces_an_earlier_description(make_photo) -> None:
    once = tag_image(make_photo(), '{"a":1}')

    twice = tag_image(once, '{"b":2}')

    assert read_description(twice) == '{"b":2}'
    assert twice.count(b"Exif\x00\x00") == 1


def test_tagging_a_jpeg_without_exif_adds_it(make_photo) -> None:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(buffer, "JPEG")

    tagged = tag_image(buffer.getvalue(), '{"x":1}')

    assert read_description(tagged) == '{"x":1}'


def test_manifest_angles_in_both_shapes(tmp_path: Path) -> None:
    mapping = tmp_path / "m1.json"
    mapping.write_text(
        json.dumps({"photos": {"a.jpg": {"turntable": 10, "rotor": 20}}})
    )
    listing = tmp_path / "m2.json"
    listing.write_text(json.dumps([{"file": "sub/b.jpg", "turntable_angle": 5.5}]))

    assert load_manifest(mapping) == {"a.jpg": Angles(turntable=10.0, tilt=20.0)}
    assert load_manifest(listing) == {"b.jpg": Angles(turntable=5.5)}


def test_zip_is_deterministic_and_originals_are_untouched(
    photo_set, tmp_path: Path
) -> None:
    folder = photo_set(3)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    mtimes = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    images = validate_directory(folder, Limits()).images

    first = build_zip(images, "p.zip", tmp_path / "w1" / "p.zip")
    second = build_zip(images, "p.zip", tmp_path / "w2" / "p.zip")

    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == mtimes
    with zipfile.ZipFile(first.path) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["IMG_0000.jpg", "IMG_0001.jpg", "IMG_0002.jpg"]
        block = json.loads(read_description(archive.read("IMG_0001.jpg")))
    assert block["openscan"]["project"] == "p.zip"
    assert block["openscan"]["index"] == 1


def test_zip_refuses_a_photo_changed_after_validation(
    photo_set, tmp_path: Path, make_photo
) -> None:
    from openscan_upload.packing import PackingError

    folder = photo_set(2)
    images = validate_directory(folder, Limits()).images
    (folder / "IMG_0001.jpg").write_bytes(make_photo(seed=99))

    with pytest.raises(PackingError, match=r"IMG_0001\.jpg changed"):
        build_zip(images, "p.zip", tmp_path / "p.zip")


@pytest.mark.parametrize(
    ("total", "size", "expected"),
    [
        (10, 4, [(0, 4), (4, 4), (8, 2)]),
        (8, 4, [(0, 4), (4, 4)]),
        (3, MAX_PART_SIZE, [(0, 3)]),
        (
            MAX_PART_SIZE * 2 + 1,
            MAX_PART_SIZE,
            [
                (0, MAX_PART_SIZE),
                (MAX_PART_SIZE, MAX_PART_SIZE),
                (2 * MAX_PART_SIZE, 1),
            ],
        ),
    ],
)
def test_part_ranges(total: int, size: int, expected: list[tuple[int, int]]) -> None:
    assert part_ranges(total, size) == expected


@pytest.mark.parametrize("size", [0, MAX_PART_SIZE + 1])
def test_part_size_must_be_within_the_wire_limit(size: int) -> None:
    with pytest.raises(ValueError, match="part size"):
        part_ranges(100, size)


def test_parts_concatenate_to_the_zip(photo_set, tmp_path: Path) -> None:
    images = validate_directory(photo_set(3), Limits()).images
    packed = build_zip(images, "p.zip", tmp_path / "p.zip")

    parts = split_parts(packed.path, 10_000)

    data = packed.path.read_bytes()
    assert len(parts) == -(-len(data) // 10_000)
    assert all(part.size == 10_000 for part in parts[:-1])
    assert 0 < parts[-1].size <= 10_000
    assert [part.offset for part in parts] == [
        index * 10_000 for index in range(len(parts))
    ]
    joined = b"".join(read_part(packed.path, part.offset, part.size) for part in parts)
    assert joined == data
    assert all(
        hashlib.sha256(read_part(packed.path, p.offset, p.size)).hexdigest() == p.sha256
        for p in parts
    )
    assert data[:2] == b"PK"


def test_part_reader_streams_its_range_and_reports_progress(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 10)
    seen: list[int] = []

    with PartReader(path, 100, 1000, seen.append) as reader:
        assert len(reader) == 1000
        chunks = [reader.read(300) for _ in range(4)]

    assert b"".join(chunks) == path.read_bytes()[100:1100]
    assert seen == [300, 300, 300, 100]
