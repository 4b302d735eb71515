"""Real-size copies of a result, once its scale is known (pure Python, no engine).

The reconstruction's unit is arbitrary; the owner's two points and distance
give millimetres per unit. The copies are in millimetres, the convention of
slicers and CAD, except the GLB, in metres, glTF's own unit (AR viewers and
Blender would otherwise show it a thousand times too large). The originals stay
as they are: the viewer, cameras.json and coverage.json keep their frame.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import trimesh

from projects.pipeline.gltf import scale_glb
from projects.pipeline.types import OBJ_BUNDLE_NAME, SCALED_FILES


def _scale_obj_text(text: str, factor: float) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("v "):
            x, y, z = (float(c) * factor for c in line.split()[1:4])
            line = f"v {x:.6f} {y:.6f} {z:.6f}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _scale_obj_bundle(source: Path, dest: Path, factor: float) -> None:
    with (
        zipfile.ZipFile(source) as src,
        zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as out,
    ):
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".obj"):
                data = _scale_obj_text(data.decode(), factor).encode()
            out.writestr(info.filename, data)


def _scale_trimesh(source: Path, dest: Path, factor: float, file_type: str) -> None:
    geometry = trimesh.load(source, file_type=file_type, process=False)
    geometry.apply_scale(factor)
    buffer = io.BytesIO()
    geometry.export(buffer, file_type=file_type)
    dest.write_bytes(buffer.getvalue())


def write_real_size(
    source_dir: Path, dest_dir: Path, mm_per_unit: float
) -> dict[str, int]:
    """Write the real-size copy of each original in ``source_dir`` that exists.

    Returns the copies' names (``SCALED_FILES``) and sizes.
    """
    writers = {
        "model.glb": lambda s, d: scale_glb(s, d, mm_per_unit / 1000.0),
        OBJ_BUNDLE_NAME: lambda s, d: _scale_obj_bundle(s, d, mm_per_unit),
        "model.stl": lambda s, d: _scale_trimesh(s, d, mm_per_unit, "stl"),
        "points.ply": lambda s, d: _scale_trimesh(s, d, mm_per_unit, "ply"),
    }
    dest_dir.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for original, write in writers.items():
        source = source_dir / original
        if not source.is_file():
            continue
        dest = dest_dir / SCALED_FILES[original].name
        write(source, dest)
        sizes[dest.name] = dest.stat().st_size
    return sizes
