"""``reconstruct``: runs the stages in order, times them and reports progress."""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from projects.pipeline import engine, eta
from projects.pipeline.presets import PresetConfig, preset_config
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


# Seconds between progress reports while a stage is inside one long engine call:
# the time left and the bar keep moving (pages promise an update every 5 s).
TICK_SECONDS = 2.0


class _Run:
    """Stage bookkeeping shared by the steps of one reconstruction.

    Reports may come from worker threads (depth maps); one lock keeps them in
    order, and a ticker thread repeats the last one with a fresh estimate.
    """

    def __init__(self, on_progress: ProgressCallback, estimator: eta.Estimator) -> None:
        self.on_progress = on_progress
        self.estimator = estimator
        self.timings: list[StageTiming] = []
        self.stage = STAGES[0]
        self.stage_start = time.perf_counter()
        self.fraction = 0.0
        self.count = ("", 0, 0)
        self.overall = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def report(
        self,
        fraction: float,
        message: str = "",
        *,
        unit: str = "",
        done: int = 0,
        total: int = 0,
        **counters: int,
    ) -> None:
        with self._lock:
            self.fraction = min(max(fraction, 0.0), 1.0)
            if unit:
                self.count = (unit, done, total)
            self._emit(message, counters)

    def _emit(self, message: str, counters: dict[str, int]) -> None:
        estimate = self.estimator.estimate(
            self.stage, self.fraction, time.perf_counter() - self.stage_start
        )
        self.overall = max(self.overall, estimate.overall)  # the bar never goes back
        unit, done, total = self.count
        self.on_progress(
            Progress(
                stage=self.stage,
                stage_index=STAGES.index(self.stage),
                stage_count=len(STAGES),
                fraction=self.fraction,
                counters=dict(counters),
                message=message,
                unit=unit,
                done=done,
                total=total,
                overall=self.overall,
                eta_seconds=estimate.eta_seconds,
            )
        )

    def counter(
        self, unit: str, low: float = 0.0, high: float = 1.0
    ) -> Callable[[int, int], None]:
        """A (done, total) callback for a step, mapped onto part of the stage."""

        def tick(done: int, total: int) -> None:
            share = done / total if total else 1.0
            self.report(low + (high - low) * share, unit=unit, done=done, total=total)

        return tick

    @contextmanager
    def ticking(self) -> Iterator[None]:
        def loop() -> None:
            while not self._stop.wait(TICK_SECONDS):
                with self._lock:
                    self._emit("", {})

        thread = threading.Thread(target=loop, name="progress-ticker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()

    @contextmanager
    def stage_of(self, name: str) -> Iterator[None]:
        with self._lock:
            self.stage, self.fraction, self.count = name, 0.0, ("", 0, 0)
            self.stage_start = time.perf_counter()
        self.report(0.0, f"{name} started")
        yield
        seconds = time.perf_counter() - self.stage_start
        peak = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )  # Linux reports KiB
        self.timings.append(StageTiming(name, round(seconds, 3), peak))
        self.estimator.finish(name, seconds)
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
    config = preset_config(request.preset)
    guess = [_size_guess(path) for path in request.images]
    run = _Run(
        on_progress, eta.Estimator(STAGES, predict_stages(request, config, guess))
    )
    request.out_dir.mkdir(parents=True, exist_ok=True)
    request.workdir.mkdir(parents=True, exist_ok=True)
    try:
        with run.ticking():
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


def _size_guess(path: Path) -> tuple[int, int]:
    """A photo's (width, height) before ingest reads it: a JPEG at the quality
    cameras save takes about 0.4 bytes per pixel, in 4:3."""
    try:
        pixels = os.path.getsize(path) / 0.4
    except OSError:
        pixels = 12e6
    return int((pixels * 4 / 3) ** 0.5), int((pixels * 3 / 4) ** 0.5)


def predict_stages(
    request: ReconstructionRequest,
    config: PresetConfig,
    sizes: Sequence[tuple[int, int]],
    *,
    pairs: int | None = None,
    placed: int | None = None,
) -> dict[str, float]:
    """Predicted seconds per stage for photos of ``sizes`` (eta.py's cost model)."""
    n = len(sizes)
    sift = 0.0
    for width, height in sizes:
        long_side = max(width, height, 1)
        size = features.sift_size(long_side, config.sift_max_image_size)
        px = width * height * min(1.0, size / long_side) ** 2
        sift += px * (4 if min(long_side, size) < config.sift_upsample_below else 1)
    if pairs is None:  # pairs.plan_pairs: exhaustive for small sets, else retrieval
        k = config.retrieval_neighbours
        pairs = n * (n - 1) // 2 if n - 1 <= 2 * k else int(n * (0.75 * k + 2))
    depth_maps = placed if placed is not None else n
    if config.dense_max_views:
        depth_maps = min(depth_maps, config.dense_max_views)
    aspect = sum(min(w, h) / max(w, h, 1) for w, h in sizes) / max(n, 1)
    texture_mp = config.texture_size**2 / 1e6
    photos = min(n, texture.MAX_TEXTURE_PHOTOS)
    texture_photo_mp = photos * aspect * config.texture_photo_size**2 / 1e6
    if config.mesh_faces > request.preview_max_faces:  # a preview is textured too
        texture_mp += 1024**2 / 1e6
        texture_photo_mp += photos * aspect * 800**2 / 1e6
    return eta.predict(
        eta.Workload(
            photos=n,
            photo_megapixels=sum(w * h for w, h in sizes) / 1e6,
            sift_megapixels=sift / 1e6,
            sift_features=config.sift_max_features,
            pairs=pairs,
            depth_maps=depth_maps if config.dense else 0,
            dense_megapixels=config.dense_max_size**2 * aspect / 1e6,
            dense_planes=config.dense_planes,
            dense_neighbours=config.dense_neighbours,
            poisson_depth=config.poisson_depth,
            texture_megapixels=texture_mp,
            texture_photo_megapixels=texture_photo_mp,
        )
    )


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
            on_photo=run.counter("photos read"),
        )
        run.report(1.0, images=len(ingested.images), unusable=len(ingested.unusable))
    total = len(ingested.images)
    sizes = [(im.width, im.height) for im in ingested.images]
    run.estimator.revise(predict_stages(request, config, sizes))
    database = request.workdir / "database.db"
    with run.stage_of("features"):
        masked = features.extract(
            ingested, database, config, threads, on_photo=run.counter("photos")
        )
        if masked:
            run.report(
                1.0,
                f"still backdrop masked in {len(masked)} photos "
                f"({sum(masked.values()) / len(masked):.0%} of each on average)",
                still_backdrop_photos=len(masked),
            )
    with run.stage_of("matching"):
        matcher = features.Matcher(ingested, database, config, request.workdir, threads)
        run.estimator.revise(
            predict_stages(request, config, sizes, pairs=len(matcher.plan.pairs))
        )
        matched = matcher.match_planned(on_pairs=run.counter("pairs matched", 0.02))
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
            on_registered=lambda k: run.report(
                k / total, unit="photos placed", done=k, total=total
            ),
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
    run.estimator.revise(
        predict_stages(
            request, config, sizes, pairs=matched.pairs, placed=len(model.cameras)
        )
    )
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
                on_depth_map=run.counter("depth maps", 0.05, 0.8),
                on_fused=run.counter("depth maps checked", 0.8, 0.98),
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
        run.report(0.1, "object separated from its base")
        surface = mesh.build_mesh(
            obj,
            depth=config.poisson_depth,
            target_faces=config.mesh_faces,
            threads=threads,
            on_surface=lambda: run.report(0.75, "surface built, cleaning it"),
        )
        run.report(1.0, vertices=len(surface.vertices), faces=len(surface.faces))
    with run.stage_of("texture"):
        has_preview = len(surface.faces) > request.preview_max_faces
        end = 0.75 if has_preview else 1.0
        textured = texture.texture_mesh(
            surface,
            model,
            ingested.image_dir,
            texture_size=config.texture_size,
            photo_size=config.texture_photo_size,
            on_rays=run.counter("photos checked for sight", 0.15 * end, 0.45 * end),
            on_photo=run.counter("photos painted", 0.45 * end, 0.95 * end),
        )
        preview = None
        if has_preview:
            small = mesh.decimate(surface, request.preview_max_faces)
            preview = texture.texture_mesh(
                small,
                model,
                ingested.image_dir,
                texture_size=1024,
                photo_size=800,
                on_rays=run.counter("preview photos checked", 0.78, 0.85),
                on_photo=run.counter("preview photos painted", 0.85, 0.99),
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
            on_file=run.counter("files written"),
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
