"""``reconstruct``: runs the stages in order, times them and reports progress."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from projects.pipeline import engine
from projects.pipeline.presets import preset_config
from projects.pipeline.steps import (
    coverage,
    dense,
    diagnose,
    export,
    features,
    ingest,
    mesh,
    sparse,
    texture,
)
from projects.pipeline.steps.common import robust_diagonal
from projects.pipeline.types import (
    MatchingReport,
    PipelineError,
    Progress,
    ProgressCallback,
    ReconstructionRequest,
    ReconstructionResult,
    StageTiming,
    UnusableImage,
    ignore_progress,
)

STAGES = (
    "ingest",
    "features",
    "matching",
    "sparse",
    "dense",
    "mesh",
    "texture",
    "export",
)


class _Run:
    """Stage bookkeeping shared by the steps of one reconstruction."""

    def __init__(self, on_progress: ProgressCallback) -> None:
        self.on_progress = on_progress
        self.timings: list[StageTiming] = []
        self.stage = STAGES[0]

    def report(self, fraction: float, message: str = "", **counters: int) -> None:
        self.on_progress(
            Progress(
                stage=self.stage,
                stage_index=STAGES.index(self.stage),
                stage_count=len(STAGES),
                fraction=min(max(fraction, 0.0), 1.0),
                counters=dict(counters),
                message=message,
            )
        )

    @contextmanager
    def stage_of(self, name: str) -> Iterator[None]:
        self.stage = name
        self.report(0.0, f"{name} started")
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        peak = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )  # Linux reports KiB
        self.timings.append(StageTiming(name, round(seconds, 3), peak))
        self.report(1.0, f"{name} done in {seconds:.1f} s")


def reconstruct(
    request: ReconstructionRequest, *, on_progress: ProgressCallback = ignore_progress
) -> ReconstructionResult:
    """Build a textured mesh from ``request.images``; raise PipelineError on any
    failure.

    Writes model.glb, model_preview.glb (Draco), model.obj/.mtl, texture.jpg,
    model_obj.zip, model.stl, points.ply, cameras.json, coverage.json,
    report.json, thumbnail.png and result.zip into ``request.out_dir``;
    scratch files go to ``request.workdir``.
    """
    run = _Run(on_progress)
    request.out_dir.mkdir(parents=True, exist_ok=True)
    request.workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _reconstruct(request, run)
    except PipelineError as exc:
        _write_report(
            request, run, {"error": {"code": exc.code, "message": exc.message}}
        )
        raise
    except MemoryError as exc:
        raise PipelineError(
            "out_of_memory", "The reconstruction ran out of memory."
        ) from exc


def _reconstruct(request: ReconstructionRequest, run: _Run) -> ReconstructionResult:
    config = preset_config(request.preset)
    threads = request.threads
    warnings: list[str] = []
    with run.stage_of("ingest"):
        ingested = ingest.ingest(
            request.images,
            request.workdir,
            max_pixels=request.max_image_pixels,
            max_images=request.max_images,
            sources=request.sources,
        )
        run.report(1.0, images=len(ingested.images), unusable=len(ingested.unusable))
    total = len(ingested.images)
    database = request.workdir / "database.db"
    with run.stage_of("features"):
        masked = features.extract(ingested, database, config, threads)
        if masked:
            run.report(
                1.0,
                f"still backdrop masked in {len(masked)} photos "
                f"({sum(masked.values()) / len(masked):.0%} of each on average)",
                still_backdrop_photos=len(masked),
            )
    with run.stage_of("matching"):
        matcher = features.Matcher(ingested, database, config, request.workdir, threads)
        matched = matcher.match_planned()
        run.report(1.0, matched_pairs=matched.pairs, verified_pairs=matched.verified)
    names = [im.name for im in ingested.images]
    sources = {im.name: im.source for im in ingested.images}
    with run.stage_of("sparse"):
        outcome = sparse.reconstruct_sparse(
            database=database,
            image_dir=ingested.image_dir,
            out_dir=request.workdir / "sparse",
            names=names,
            min_share=request.min_registered_share,
            threads=threads,
            on_registered=lambda k: run.report(k / total, registered=k, images=total),
            # A photo left out gets its best unmatched candidates: all of them
            # when few are left out, so a set exhaustive matching would place
            # fully is placed fully.
            rescue=lambda unplaced: matcher.rescue(
                unplaced,
                budget=total
                if len(unplaced) <= max(8, total // 4)
                else 3 * config.retrieval_neighbours,
            ),
            lighter_bundle_adjustment=config.lighter_bundle_adjustment,
        )
        model = sparse.clean_points(outcome.model)
        rot, trans = sparse.upright_transform(model)
        model = sparse.apply_transform(model, rot, trans)
        run.report(
            1.0, registered=len(model.cameras), images=total, points=len(model.points)
        )
    matched = matcher.summary()  # pairs added by the rescue pass count too
    if outcome.unplaced:
        warnings.append(
            f"{len(outcome.unplaced)} of {total} photos could not be placed and were "
            f"left out. {diagnose.summary_sentence(outcome.unplaced)}"
        )
    with run.stage_of("dense"):
        if config.dense:
            cfg = dense.DenseConfig(
                config.dense_max_size,
                config.dense_planes,
                config.dense_neighbours,
                min_ncc=config.dense_min_ncc,
                max_views=config.dense_max_views,
            )
            cloud = dense.densify(
                model,
                ingested.image_dir,
                cfg,
                threads=threads,
                on_depth_map=lambda k, n: run.report(k / n, depth_maps=k, views=n),
            )
            points, colors, normals = cloud.points, cloud.colors, cloud.normals
        else:
            points, colors = model.points, model.colors.astype(np.float64) / 255.0
            viewer = np.array(
                [model.cameras[int(v[0])].centre for v in model.visibility]
            )
            normals = engine.estimate_normals(
                points, radius=_diag(points) / 30, towards=viewer
            )
        run.report(1.0, points=len(points))
    with run.stage_of("mesh"):
        centres = np.array([c.centre for c in model.cameras])
        obj = mesh.isolate_object(points, colors, normals, centres)
        surface = mesh.build_mesh(
            obj,
            depth=config.poisson_depth,
            target_faces=config.mesh_faces,
            threads=threads,
        )
        run.report(1.0, vertices=len(surface.vertices), faces=len(surface.faces))
    with run.stage_of("texture"):
        textured = texture.texture_mesh(
            surface,
            model,
            ingested.image_dir,
            texture_size=config.texture_size,
            photo_size=config.texture_photo_size,
        )
        preview = None
        if len(surface.faces) > request.preview_max_faces:
            small = mesh.decimate(surface, request.preview_max_faces)
            preview = texture.texture_mesh(
                small, model, ingested.image_dir, texture_size=1024, photo_size=800
            )
        if textured.coverage < 0.8:
            warnings.append(
                f"Only {textured.coverage:.0%} of the surface was seen by a photo."
            )
        seen = coverage.surface_coverage(
            textured.vertices,
            textured.faces,
            model,
            first_photo=sources.get(model.cameras[0].name, model.cameras[0].name),
        )
        if coverage.notable(seen.report):
            warnings.append(seen.report.sentence)
    with run.stage_of("export"):
        outputs = export.export_all(
            out_dir=request.out_dir,
            mesh=textured,
            preview=preview,
            points=obj.points,
            colors=obj.colors,
            model=model,
            image_dir=ingested.image_dir,
            coverage=seen,
            sources=sources,
        )
    result = ReconstructionResult(
        outputs=outputs,
        images_total=len(request.images),
        images_used=total,
        images_registered=len(model.cameras),
        sparse_points=len(model.points),
        dense_points=len(obj.points),
        vertices=len(textured.vertices),
        faces=len(textured.faces),
        mean_reprojection_error=round(model.mean_reprojection_error, 4),
        timings=tuple(run.timings),
        unusable_images=ingested.unusable,
        warnings=tuple(warnings),
        matching=MatchingReport(
            matched.strategy, matched.reason, matched.pairs, matched.verified
        ),
        still_backdrop_photos=len(masked),
        unplaced_images=tuple(
            UnusableImage(name, why) for name, why in sorted(outcome.unplaced.items())
        ),
        coverage=seen.report,
    )
    _write_report(
        request,
        run,
        {"result": _result_dict(result), "coverage": asdict(seen.report)},
    )
    export.write_archive(request.out_dir)
    return result


def _diag(points: np.ndarray) -> float:
    return robust_diagonal(points)


def _result_dict(result: ReconstructionResult) -> dict[str, Any]:
    data = asdict(result)
    data["outputs"] = {k: Path(v).name for k, v in data["outputs"].items()}
    return data


def _write_report(
    request: ReconstructionRequest, run: _Run, body: dict[str, Any]
) -> None:
    report = {
        "preset": request.preset.value,
        "images": len(request.images),
        "stages": [asdict(t) for t in run.timings],
        "seconds": round(sum(t.seconds for t in run.timings), 3),
        "versions": engine.versions(),
        **body,
    }
    (request.out_dir / "report.json").write_text(
        json.dumps(report, indent=1, default=str)
    )
