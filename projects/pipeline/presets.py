"""What each preset does; the figures behind the defaults are in benchmarks/."""

from __future__ import annotations

from dataclasses import dataclass

from projects.pipeline.types import Preset


@dataclass(frozen=True, slots=True)
class PresetConfig:
    sift_max_image_size: int
    sift_max_features: int
    sift_upsample_below: (
        int  # upsample smaller photos before SIFT: more features, ~3x slower
    )
    retrieval_neighbours: int  # most similar photos matched with each (by content)
    lighter_bundle_adjustment: bool  # fewer global BAs and iterations while mapping
    dense: bool
    dense_max_size: int
    dense_planes: int
    dense_neighbours: int
    dense_min_ncc: float  # photo-consistency a depth needs to be kept
    dense_max_views: int  # depth maps for at most this many photos (0 = all)
    poisson_depth: int
    mesh_faces: int
    texture_size: int
    texture_photo_size: int


PRESETS: dict[Preset, PresetConfig] = {
    # Sparse-only: a quick look, never the default.
    Preset.FAST: PresetConfig(
        sift_max_image_size=800,
        sift_max_features=4096,
        sift_upsample_below=640,
        retrieval_neighbours=12,
        lighter_bundle_adjustment=True,
        dense=False,
        dense_max_size=0,
        dense_planes=0,
        dense_neighbours=0,
        dense_min_ncc=0.0,
        dense_max_views=0,
        poisson_depth=7,
        mesh_faces=20_000,
        texture_size=1024,
        texture_photo_size=800,
    ),
    Preset.BALANCED: PresetConfig(
        sift_max_image_size=800,
        sift_max_features=4096,
        sift_upsample_below=640,
        retrieval_neighbours=12,
        lighter_bundle_adjustment=True,
        dense=True,
        dense_max_size=480,
        dense_planes=40,
        dense_neighbours=5,
        dense_min_ncc=0.3,
        dense_max_views=48,
        poisson_depth=8,
        mesh_faces=60_000,
        texture_size=2048,
        texture_photo_size=1024,
    ),
    Preset.QUALITY: PresetConfig(
        sift_max_image_size=1600,
        sift_max_features=8192,
        sift_upsample_below=2000,
        retrieval_neighbours=30,
        lighter_bundle_adjustment=False,
        dense=True,
        dense_max_size=640,
        dense_planes=56,
        dense_neighbours=6,
        dense_min_ncc=0.3,
        dense_max_views=0,
        # 9 measured no better (visible F@0.5 % 0.963 vs 0.964), 4x slower
        poisson_depth=8,
        mesh_faces=200_000,
        texture_size=4096,
        texture_photo_size=1600,
    ),
}


def preset_config(preset: Preset) -> PresetConfig:
    return PRESETS[preset]
