"""The one boundary to the native engines (pycolmap and Open3D).

Everything here takes and returns numpy arrays or plain dataclasses, so the
steps stay testable and a service test can mock exactly this module.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import open3d as o3d
import pycolmap
from numpy.typing import NDArray

from projects.pipeline.types import PipelineError

FloatArray = NDArray[np.float64]

# COLMAP logs every image at INFO; the pipeline reports progress itself.
pycolmap.logging.minloglevel = 2


@dataclass(frozen=True, slots=True)
class SparseCamera:
    name: str
    width: int
    height: int
    K: FloatArray  # 3x3 pinhole part
    radial: float  # SIMPLE_RADIAL k1 (0 for pinhole models)
    R: FloatArray  # world -> camera rotation
    t: FloatArray

    @property
    def centre(self) -> FloatArray:
        return -self.R.T @ self.t


@dataclass(frozen=True, slots=True)
class SparseModel:
    cameras: tuple[SparseCamera, ...]
    points: FloatArray  # Nx3
    colors: NDArray[np.uint8]  # Nx3
    track_lengths: NDArray[np.int32]
    errors: FloatArray
    visibility: tuple[NDArray[np.int32], ...]  # per point: indices into cameras
    mean_reprojection_error: float
    other_models: tuple[tuple[str, ...], ...] = ()  # photo names of smaller models


def versions() -> dict[str, str]:
    return {
        "pycolmap": pycolmap.__version__,
        "open3d": o3d.__version__,
        "pycolmap_cuda": str(bool(pycolmap.has_cuda)),
    }


def has_cuda() -> bool:
    return bool(pycolmap.has_cuda)


def _threads(threads: int | None) -> int:
    return threads if threads else (os.cpu_count() or 1)


def extract_features(
    *,
    database: Path,
    image_dir: Path,
    names: Sequence[str],
    camera_params: str,
    single_camera: bool,
    max_image_size: int,
    max_features: int,
    first_octave: int,
    threads: int | None,
    mask_dir: Path | None = None,
    camera_id: int | None = None,
) -> int:
    """SIFT features for ``names`` with a focal prior in ``camera_params``
    (f,cx,cy,k); returns the camera id of the first photo.

    ``camera_id``: the photos share that camera already in the database (a
    group extracted in several calls keeps one intrinsics block).
    """
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    reader.camera_params = camera_params
    if camera_id is not None:
        reader.existing_camera_id = camera_id
    if mask_dir is not None:  # NAME.png masks: features only where white
        reader.mask_path = str(mask_dir)
    options = pycolmap.FeatureExtractionOptions()
    options.max_image_size = max_image_size
    options.num_threads = _threads(threads)
    options.sift.max_num_features = max_features
    options.sift.first_octave = first_octave
    mode = (
        pycolmap.CameraMode.SINGLE if single_camera else pycolmap.CameraMode.PER_IMAGE
    )
    pycolmap.extract_features(
        database,
        image_dir,
        image_names=list(names),
        camera_mode=mode,
        reader_options=reader,
        extraction_options=options,
        device=pycolmap.Device.auto,
    )
    with closing(sqlite3.connect(database)) as con:
        row = con.execute(
            "SELECT camera_id FROM images WHERE name = ?", (names[0],)
        ).fetchone()
    return int(row[0])


def number_images_by_name(database: Path) -> None:
    """Renumber photos (and their frames) in name order after extraction.

    Parallel extraction writes photos in the order threads finish, and the
    mapper breaks ties by id: without this the same photos could give another
    model. Runs before matching, so no pair ids need rewriting.
    """
    offset = 1_000_000_000  # ids stay inside the schema's CHECK range
    with closing(sqlite3.connect(database)) as con, con:
        names = con.execute("SELECT image_id FROM images ORDER BY name").fetchall()
        image_map = [(old + offset, new) for new, (old,) in enumerate(names, 1)]
        frame_of = dict(
            con.execute(
                "SELECT data_id, frame_id FROM frame_data WHERE sensor_type = 0"
            )
        )
        frame_map = [(frame_of[old - offset] + offset, new) for old, new in image_map]
        con.execute("CREATE TEMP TABLE remap (old INTEGER PRIMARY KEY, new INTEGER)")
        for table, column, mapping in (
            ("images", "image_id", image_map),
            ("keypoints", "image_id", image_map),
            ("descriptors", "image_id", image_map),
            ("frame_data", "data_id", image_map),
            ("frame_data", "frame_id", frame_map),
            ("frames", "frame_id", frame_map),
        ):
            con.execute("DELETE FROM remap")
            con.executemany("INSERT INTO remap VALUES (?, ?)", mapping)
            con.execute(f"UPDATE {table} SET {column} = {column} + {offset}")  # noqa: S608  # fixed names
            con.execute(
                f"UPDATE {table} SET {column} = "  # noqa: S608  # fixed names
                f"(SELECT new FROM remap WHERE old = {table}.{column})"
            )


def read_features(
    database: Path, names: Sequence[str]
) -> list[tuple[NDArray[np.float32], NDArray[np.uint8]]]:
    """Keypoint positions (x, y) and SIFT descriptors per photo, in ``names`` order."""
    with pycolmap.Database.open(database) as db:
        ids = {im.name: im.image_id for im in db.read_all_images()}
        return [
            (
                np.asarray(db.read_keypoints(ids[name])[:, :2], dtype=np.float32),
                np.asarray(db.read_descriptors(ids[name]).data, dtype=np.uint8),
            )
            for name in names
        ]


def _verification() -> pycolmap.TwoViewGeometryOptions:
    verification = pycolmap.TwoViewGeometryOptions()
    # A rig's still camera sees a still backdrop at the same pixel in every photo:
    # such matches say nothing about the object's motion and would pull every
    # camera to one place, so pairs lose them before the geometry is fitted.
    verification.filter_stationary_matches = True
    verification.ransac.random_seed = 0  # the same photos give the same pairs
    return verification


def match_pairs(*, database: Path, pairs_file: Path, threads: int | None) -> None:
    """Match and verify the photo pairs listed in ``pairs_file`` (names per line)."""
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = _threads(threads)
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = str(pairs_file)
    pycolmap.match_image_pairs(
        database,
        matching_options=matching,
        pairing_options=pairing,
        verification_options=_verification(),
    )


def verified_inliers(database: Path) -> dict[tuple[str, str], int]:
    """Geometrically verified inlier count per matched pair of photo names."""
    with pycolmap.Database.open(database) as db:
        names = {im.image_id: im.name for im in db.read_all_images()}
        pair_ids, geometries = db.read_two_view_geometries()
        out = {}
        for pair_id, geom in zip(pair_ids, geometries, strict=True):
            a, b = pycolmap.pair_id_to_image_pair(pair_id)
            out[(names[a], names[b])] = int(geom.inlier_matches.shape[0])
        return out


def keypoint_counts(database: Path) -> dict[str, int]:
    with pycolmap.Database.open(database) as db:
        return {
            im.name: int(db.num_keypoints_for_image(im.image_id))
            for im in db.read_all_images()
        }


def map_incremental(
    *,
    database: Path,
    image_dir: Path,
    out_dir: Path,
    on_image: Callable[[], None],
    refine_focal: bool = True,
    lighter_bundle_adjustment: bool = False,
    resume: bool = False,
) -> SparseModel | None:
    """Incremental SfM; return the largest model or None when nothing registered.

    ``lighter_bundle_adjustment``: global BA after 50 % growth instead of 10 %,
    fewer iterations and refinements (48 views: mapping 23 -> 15 CPU-s, camera
    centres as accurate; benchmarks/). ``resume`` continues from the model the
    last call kept in ``out_dir/best`` (after more pairs were matched).
    """
    options = pycolmap.IncrementalPipelineOptions()
    # One thread: a bundle adjustment over 50k residuals runs on Ceres' threads,
    # whose sums come in a varying order; a last-digit difference can tip a
    # later choice of the mapper, and the same photos once came out shifted by
    # 3 % of the ring. On 96 photos one thread maps as fast as two on 2 cores
    # (17.3 s against 18.6 s).
    options.num_threads = 1
    options.ba_refine_focal_length = refine_focal
    if lighter_bundle_adjustment:
        options.ba_global_frames_ratio = 1.5
        options.ba_global_points_ratio = 1.5
        options.ba_global_max_refinements = 2
        options.ba_global_max_num_iterations = 30
        options.ba_local_max_num_iterations = 15
    # When the first initial pair leads nowhere (it happens on object-centred
    # sets), the mapper tries other pairs and builds further models; the
    # largest is kept and the photos of the others are reported.
    options.multiple_models = True
    options.random_seed = 1
    options.mapper.random_seed = 1
    options.triangulation.random_seed = 1
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = out_dir / "best"
    start = str(kept) if resume and (kept / "images.bin").exists() else ""
    try:
        models = pycolmap.incremental_mapping(
            database,
            image_dir,
            out_dir / ("resumed" if start else "first"),
            options=options,
            input_path=start,
            next_image_callback=on_image,
        )
    except RuntimeError as exc:  # pycolmap raises on degenerate input
        raise PipelineError(
            "engine_error", f"The camera solver stopped: {exc}"
        ) from exc
    if not models:
        return None
    ranked = sorted(models.values(), key=lambda r: -r.num_reg_images())
    best = ranked[0]
    groups = tuple(
        tuple(sorted(r.images[i].name for i in r.reg_image_ids())) for r in ranked[1:]
    )
    kept.mkdir(exist_ok=True)
    best.write(kept)
    return replace(_to_sparse(best), other_models=groups)


def _to_sparse(rec: pycolmap.Reconstruction) -> SparseModel:
    cameras: list[SparseCamera] = []
    index_of: dict[int, int] = {}
    for image_id in sorted(rec.reg_image_ids(), key=lambda i: rec.images[i].name):
        image = rec.images[image_id]
        cam = image.camera
        pose = image.cam_from_world()
        params = np.asarray(cam.params, dtype=np.float64)
        radial = float(params[3]) if cam.model_name == "SIMPLE_RADIAL" else 0.0
        index_of[image_id] = len(cameras)
        cameras.append(
            SparseCamera(
                name=image.name,
                width=int(cam.width),
                height=int(cam.height),
                K=np.asarray(cam.calibration_matrix(), dtype=np.float64),
                radial=radial,
                R=np.asarray(pose.rotation.matrix(), dtype=np.float64),
                t=np.asarray(pose.translation, dtype=np.float64),
            )
        )
    ids = list(rec.points3D.keys())
    pts = [rec.points3D[i] for i in ids]
    visibility = tuple(
        np.array(
            sorted({index_of[el.image_id] for el in p.track.elements}), dtype=np.int32
        )
        for p in pts
    )
    return SparseModel(
        cameras=tuple(cameras),
        points=np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3),
        colors=np.array([p.color for p in pts], dtype=np.uint8).reshape(-1, 3),
        track_lengths=np.array([p.track.length() for p in pts], dtype=np.int32),
        errors=np.array([p.error for p in pts], dtype=np.float64),
        visibility=visibility,
        mean_reprojection_error=float(rec.compute_mean_reprojection_error()),
    )


def statistical_inliers(
    points: FloatArray, neighbours: int = 16, std_ratio: float = 2.0
) -> NDArray[np.intp]:
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    _, index = cloud.remove_statistical_outlier(
        nb_neighbors=neighbours, std_ratio=std_ratio
    )
    return np.asarray(index, dtype=np.intp)


def estimate_normals(
    points: FloatArray, radius: float, towards: FloatArray
) -> FloatArray:
    """Normals from local planes, flipped to face ``towards`` (one viewpoint per
    point)."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(
        o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=30)
    )
    normals = np.asarray(cloud.normals)
    flip = np.sum(normals * (towards - points), axis=1) < 0
    normals[flip] *= -1
    return normals


def poisson(
    points: FloatArray,
    normals: FloatArray,
    colors: FloatArray,
    depth: int,
    threads: int | None,
) -> tuple[FloatArray, NDArray[np.int64], FloatArray, FloatArray]:
    """Screened Poisson surface; returns vertices, faces, densities, vertex colours."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.normals = o3d.utility.Vector3dVector(normals)
    cloud.colors = o3d.utility.Vector3dVector(colors)
    mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
        cloud, depth=depth, scale=1.1, linear_fit=False, n_threads=1
    )
    return (
        np.asarray(mesh.vertices),
        np.asarray(mesh.triangles, dtype=np.int64),
        np.asarray(density),
        np.asarray(mesh.vertex_colors),
    )


def clean_and_decimate(
    vertices: FloatArray,
    faces: NDArray[np.int64],
    target_faces: int,
    min_island_share: float,
) -> tuple[FloatArray, NDArray[np.int64]]:
    """Drop small islands and non-manifold edges, then quadric-decimate."""
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(vertices),
        o3d.utility.Vector3iVector(faces.astype(np.int32)),
    )
    clusters, counts, _ = mesh.cluster_connected_triangles()
    clusters_np, counts_np = np.asarray(clusters), np.asarray(counts)
    if len(counts_np):
        keep = counts_np >= max(counts_np.max() * min_island_share, 1)
        mesh.remove_triangles_by_mask(~keep[clusters_np])
    mesh.remove_unreferenced_vertices()
    if len(mesh.triangles) > target_faces:
        mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=target_faces)
    _make_manifold(mesh)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles, dtype=np.int64)


def _make_manifold(mesh: o3d.geometry.TriangleMesh) -> None:
    """UV unwrapping refuses non-manifold input: drop the few offending faces."""
    for _ in range(5):
        mesh.remove_degenerate_triangles()
        mesh.remove_duplicated_triangles()
        mesh.remove_non_manifold_edges()
        bad = np.asarray(mesh.get_non_manifold_vertices())
        if len(bad) == 0:
            break
        tris = np.asarray(mesh.triangles)
        mesh.remove_triangles_by_mask(np.isin(tris, bad).any(axis=1))
        mesh.remove_unreferenced_vertices()
    mesh.remove_unreferenced_vertices()


def visible_faces(
    vertices: FloatArray,
    faces: NDArray[np.int64],
    centres: Sequence[FloatArray],
    on_centre: Callable[[int, int], None] = lambda done, total: None,
    *,
    face_ids: NDArray[np.int64] | None = None,
) -> list[NDArray[np.bool_]]:
    """For each camera centre, which faces' centroids it sees unoccluded (Embree
    rays); only ``face_ids`` (in that order) when given, all faces otherwise."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(vertices.astype(np.float32)),
        o3d.core.Tensor(faces.astype(np.uint32)),
    )
    ids = np.arange(len(faces)) if face_ids is None else face_ids
    centroids = vertices[faces[ids]].mean(axis=1)
    out = []
    for centre in centres:
        dirs = centroids - centre
        rays = np.concatenate(
            [np.broadcast_to(centre, dirs.shape), dirs], axis=1
        ).astype(np.float32)
        hit = scene.cast_rays(o3d.core.Tensor(rays))
        prim = hit["primitive_ids"].numpy().astype(np.int64)
        t_hit = hit["t_hit"].numpy()
        # Rays are scaled so the centroid sits at t = 1; a neighbour hit first counts
        # too.
        out.append((prim == ids) | (np.abs(t_hit - 1.0) < 1e-3))
        on_centre(len(out), len(centres))
    return out


def fit_plane(
    points: FloatArray, threshold: float
) -> tuple[FloatArray, NDArray[np.intp]]:
    """RANSAC plane (a, b, c, d) with a*x + b*y + c*z + d = 0, and its inlier
    indices."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    o3d.utility.random.seed(0)  # the same photos must give the same model
    plane, inliers = cloud.segment_plane(
        distance_threshold=threshold, ransac_n=3, num_iterations=500
    )
    return np.asarray(plane, dtype=np.float64), np.asarray(inliers, dtype=np.intp)
