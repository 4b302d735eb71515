"""Score a reconstruction against the synthetic ground truth.

The result is aligned to the truth by the similarity that maps its camera
centres (``cameras.json``) onto the true ones (Umeyama), then compared by
nearest-neighbour distances between surface samples: accuracy (result to
truth), completeness (truth to result), Chamfer (their mean) and F-score at
tau = 1 % and 0.5 % of the truth's bounding-box diagonal. "Visible" restricts
the truth to the surface some camera actually sees (a turntable object's
underside never is).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
import trimesh
from numpy.typing import NDArray
from scipy.spatial import cKDTree

Float = NDArray[np.float64]
SAMPLES = 200_000


@dataclass(frozen=True, slots=True)
class Scores:
    accuracy: float
    completeness: float
    chamfer: float
    f1: float
    f05: float
    visible_chamfer: float
    visible_f05: float
    visible_f1: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def umeyama(src: Float, dst: Float) -> tuple[float, Float, Float]:
    """Scale, rotation, translation minimising |s R src + t - dst|."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / a.var(0).sum())
    return scale, rot, mu_d - scale * rot @ mu_s


def load_truth(set_dir: Path) -> tuple[trimesh.Trimesh, list[dict]]:
    mesh = trimesh.load(set_dir / "ground_truth.ply", process=False)
    cameras = json.loads((set_dir / "cameras_gt.json").read_text())["cameras"]
    return mesh, cameras


def visible_samples(
    mesh: trimesh.Trimesh, cameras: list[dict], count: int = SAMPLES
) -> tuple[Float, Float]:
    """Surface samples of the truth, and the subset that some camera sees."""
    points, _ = trimesh.sample.sample_surface(mesh, count, seed=1)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices.astype(np.float32)),
        o3d.core.Tensor(mesh.faces.astype(np.uint32)),
    )
    seen = np.zeros(len(points), bool)
    for cam in cameras:
        centre, K, R, t = (np.array(cam[k]) for k in ("centre", "K", "R", "t"))
        pc = points @ R.T + t
        uv = pc @ K.T
        u, v = uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2]
        inside = (
            (pc[:, 2] > 0)
            & (u >= 0)
            & (u < cam["width"])
            & (v >= 0)
            & (v < cam["height"])
        )
        dirs = points - centre
        rays = np.concatenate([np.broadcast_to(centre, dirs.shape), dirs], 1).astype(
            np.float32
        )
        t_hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
        seen |= inside & (t_hit > 1 - 1e-3)
    return points, points[seen]


def _f(precision: float, recall: float) -> float:
    return (
        0.0
        if precision + recall == 0
        else 2 * precision * recall / (precision + recall)
    )


def score_points(result: Float, truth: Float, visible: Float, diag: float) -> Scores:
    d_rt = cKDTree(truth).query(result)[0]
    d_tr = cKDTree(result).query(truth)[0]
    d_vr = cKDTree(result).query(visible)[0]
    acc, comp, vcomp = float(d_rt.mean()), float(d_tr.mean()), float(d_vr.mean())

    def fscore(tau: float, to_truth: Float) -> float:
        return _f(float(np.mean(d_rt < tau)), float(np.mean(to_truth < tau)))

    return Scores(
        accuracy=acc / diag,
        completeness=comp / diag,
        chamfer=(acc + comp) / 2 / diag,
        f1=fscore(0.01 * diag, d_tr),
        f05=fscore(0.005 * diag, d_tr),
        visible_chamfer=(acc + vcomp) / 2 / diag,
        visible_f05=fscore(0.005 * diag, d_vr),
        visible_f1=fscore(0.01 * diag, d_vr),
    )


def alignment(
    out_dir: Path, truth_cameras: list[dict]
) -> tuple[float, Float, Float, int]:
    ours = {
        c["name"]: np.array(c["centre"])
        for c in json.loads((out_dir / "cameras.json").read_text())["cameras"]
    }
    names = [c["name"] for c in truth_cameras if c["name"] in ours]
    src = np.array([ours[n] for n in names])
    dst = np.array(
        [next(c["centre"] for c in truth_cameras if c["name"] == n) for n in names]
    )
    scale, rot, trans = umeyama(src, dst)
    return scale, rot, trans, len(names)


def score_result(out_dir: Path, set_dir: Path) -> dict[str, object]:
    """Mesh and point-cloud scores of ``out_dir`` against the set in ``set_dir``."""
    truth_mesh, truth_cameras = load_truth(set_dir)
    cache = set_dir / "truth_samples.npz"
    if cache.exists():
        data = np.load(cache)
        truth, visible = data["truth"], data["visible"]
    else:
        truth, visible = visible_samples(truth_mesh, truth_cameras)
        np.savez(cache, truth=truth, visible=visible)
    diag = float(np.linalg.norm(truth_mesh.bounds[1] - truth_mesh.bounds[0]))
    scale, rot, trans, matched = alignment(out_dir, truth_cameras)
    loaded = trimesh.load(out_dir / "model.glb", force="mesh", process=False)
    mesh_points, _ = trimesh.sample.sample_surface(loaded, SAMPLES, seed=2)
    cloud = np.asarray(trimesh.load(out_dir / "points.ply").vertices)

    def aligned(p: Float) -> Float:
        return scale * p @ rot.T + trans

    return {
        "cameras_matched": matched,
        "mesh": score_points(aligned(mesh_points), truth, visible, diag).as_dict(),
        "points": score_points(aligned(cloud), truth, visible, diag).as_dict(),
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(score_result(Path(sys.argv[1]), Path(sys.argv[2])), indent=1))
