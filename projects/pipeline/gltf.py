"""glTF binaries written or changed here: the Draco preview and real-size copies.

pygltflib builds and parses the documents: it names every glTF field, pads the
GLB chunks and keeps extensions as given, so only the Draco block is ours.
"""

from __future__ import annotations

import io
from pathlib import Path

import DracoPy
import numpy as np
import pygltflib
from numpy.typing import NDArray
from PIL import Image

DRACO = "KHR_draco_mesh_compression"
_FLOAT = pygltflib.FLOAT
# Draco attribute types (draco::GeometryAttribute::Type).
_DRACO_POSITION, _DRACO_TEX_COORD = 0, 3


def _jpeg(texture: NDArray[np.uint8], max_size: int, quality: int) -> bytes:
    image = Image.fromarray(texture)
    if max(image.size) > max_size:
        # UVs are fractions of the image, so a uniform downscale keeps them valid.
        image = image.resize(
            (
                max(1, image.width * max_size // max(image.size)),
                max(1, image.height * max_size // max(image.size)),
            ),
            Image.Resampling.LANCZOS,
        )
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def write_draco_glb(
    *,
    vertices: NDArray[np.float64],
    faces: NDArray[np.int64],
    uvs: NDArray[np.float64],
    texture: NDArray[np.uint8],
    path: Path,
    max_texture: int = 1024,
    jpeg_quality: int = 85,
) -> None:
    """A textured GLB whose geometry is Draco-compressed and texture a small JPEG.

    ``uvs`` are per vertex with the origin at the image's top-left (glTF's).
    Positions keep 14 bits (1/16384 of the model's size), UVs 12 bits (a quarter
    texel at 1024 px). The accessors carry the decoded counts and bounds, as the
    extension asks, so loaders without Draco still read a valid document.
    """
    encoded = DracoPy.encode(
        vertices.astype(np.float32),
        faces.astype(np.uint32),
        quantization_bits=14,
        compression_level=7,
        tex_coord=uvs.astype(np.float64),
        tex_coord_quantization_bits=12,
    )
    decoded = DracoPy.decode(encoded)
    ids = {a["attribute_type"]: a["unique_id"] for a in decoded.attributes}
    image = _jpeg(texture, max_texture, jpeg_quality)
    blob = _pad4(encoded) + image
    points = np.asarray(decoded.points, np.float32)
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(generator="OpenScan Portal", version="2.0"),
        extensionsUsed=[DRACO],
        extensionsRequired=[DRACO],
        scene=0,
        scenes=[pygltflib.Scene(nodes=[0])],
        nodes=[pygltflib.Node(mesh=0, name="model")],
        meshes=[
            pygltflib.Mesh(
                primitives=[
                    pygltflib.Primitive(
                        attributes=pygltflib.Attributes(POSITION=0, TEXCOORD_0=1),
                        indices=2,
                        material=0,
                        extensions={
                            DRACO: {
                                "bufferView": 0,
                                "attributes": {
                                    "POSITION": ids[_DRACO_POSITION],
                                    "TEXCOORD_0": ids[_DRACO_TEX_COORD],
                                },
                            }
                        },
                    )
                ]
            )
        ],
        accessors=[
            pygltflib.Accessor(
                componentType=_FLOAT,
                count=len(points),
                type=pygltflib.VEC3,
                min=points.min(axis=0).tolist(),
                max=points.max(axis=0).tolist(),
            ),
            pygltflib.Accessor(
                componentType=_FLOAT, count=len(points), type=pygltflib.VEC2
            ),
            pygltflib.Accessor(
                componentType=pygltflib.UNSIGNED_INT,
                count=int(np.asarray(decoded.faces).size),
                type=pygltflib.SCALAR,
            ),
        ],
        materials=[
            pygltflib.Material(
                pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                    baseColorTexture=pygltflib.TextureInfo(index=0),
                    metallicFactor=0.0,
                    roughnessFactor=1.0,
                ),
            )
        ],
        samplers=[
            pygltflib.Sampler(
                magFilter=pygltflib.LINEAR,
                minFilter=pygltflib.LINEAR_MIPMAP_LINEAR,
            )
        ],
        textures=[pygltflib.Texture(sampler=0, source=0)],
        images=[pygltflib.Image(bufferView=1, mimeType="image/jpeg")],
        bufferViews=[
            pygltflib.BufferView(buffer=0, byteOffset=0, byteLength=len(encoded)),
            pygltflib.BufferView(
                buffer=0, byteOffset=len(_pad4(encoded)), byteLength=len(image)
            ),
        ],
        buffers=[pygltflib.Buffer(byteLength=len(blob))],
    )
    for accessor in gltf.accessors:  # no bufferView: nothing to offset into
        accessor.byteOffset = None
    gltf.set_binary_blob(blob)
    path.write_bytes(b"".join(gltf.save_to_bytes()))


def _positions(gltf: pygltflib.GLTF2) -> list[pygltflib.Accessor]:
    return [
        gltf.accessors[p.attributes.POSITION]
        for mesh in gltf.meshes
        for p in mesh.primitives
        if p.attributes.POSITION is not None
    ]


def glb_bounds(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The model's bounding box from its POSITION accessors' min and max.

    Reads only the JSON; nodes of our GLBs carry no transform.
    """
    gltf = pygltflib.GLTF2.load_binary(str(path))
    accessors = _positions(gltf)
    low = np.min([a.min for a in accessors], axis=0).astype(np.float64)
    high = np.max([a.max for a in accessors], axis=0).astype(np.float64)
    return low, high


def scale_glb(source: Path, dest: Path, factor: float) -> None:
    """Copy a GLB with every position multiplied by ``factor`` (uncompressed GLBs).

    The positions are rewritten rather than a node scale added, so every
    importer shows the same size and nothing else in the file changes.
    """
    gltf = pygltflib.GLTF2.load_binary(str(source))
    blob = bytearray(gltf.binary_blob() or b"")
    for accessor in _positions(gltf):
        if accessor.bufferView is None or accessor.componentType != _FLOAT:
            raise ValueError("Only plain float positions can be scaled.")
        view = gltf.bufferViews[accessor.bufferView]
        stride = view.byteStride or 12
        start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
        rows = np.ndarray(
            (accessor.count, 3),
            dtype="<f4",
            buffer=blob,
            offset=start,
            strides=(stride, 4),
        )
        rows *= np.float32(factor)
        accessor.min = (np.asarray(accessor.min) * factor).tolist()
        accessor.max = (np.asarray(accessor.max) * factor).tolist()
    gltf.set_binary_blob(bytes(blob))
    dest.write_bytes(b"".join(gltf.save_to_bytes()))
