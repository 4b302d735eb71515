"""Which photo pairs to match, chosen from image content, never from file names.

Small sets are matched exhaustively. Larger ones get a retrieval step: a
small visual vocabulary is learnt from the set's own SIFT descriptors, every
photo becomes one VLAD vector, and each photo is matched with its nearest
neighbours in that space. Capture-order priors (file names, EXIF time) add a
few pairs but never replace content, so a shuffled, renamed or merged folder
is handled like a well-ordered one. Everything here is numpy and seeded, so
the same photos always give the same pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.vq import kmeans2

Pair = tuple[int, int]

WORDS = 64  # VLAD centres: enough for one object's set, cheap to learn
DESCRIPTORS_PER_PHOTO = 1000  # sampled per photo for the vocabulary and the vectors
VOCABULARY_SAMPLE = 40_000
SEED = 20261202


@dataclass(frozen=True, slots=True)
class PairPlan:
    strategy: str  # "exhaustive" or "retrieval"
    reason: str
    pairs: tuple[Pair, ...]  # index pairs (a < b) into the photo list
    neighbours: NDArray[np.intp]  # per photo: every other photo, most similar first


def exhaustive_pairs(count: int) -> list[Pair]:
    return [(a, b) for a in range(count) for b in range(a + 1, count)]


def _root_sift(desc: NDArray[np.uint8]) -> NDArray[np.float32]:
    d = desc.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-9
    return np.sqrt(d)


def _sample(desc: NDArray[np.uint8], index: int) -> NDArray[np.float32]:
    if len(desc) > DESCRIPTORS_PER_PHOTO:
        rng = np.random.default_rng(SEED + index)
        pick = np.sort(rng.choice(len(desc), DESCRIPTORS_PER_PHOTO, replace=False))
        desc = desc[pick]
    return _root_sift(desc)


def vlad_vectors(descriptors: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
    """One L2-normalised VLAD vector per photo from its SIFT descriptors."""
    samples = [_sample(d, i) for i, d in enumerate(descriptors)]
    pool = np.concatenate([s for s in samples if len(s)]) if samples else None
    if pool is None or len(pool) < WORDS:
        return np.zeros((len(descriptors), WORDS * 128), np.float32)
    rng = np.random.default_rng(SEED)
    if len(pool) > VOCABULARY_SAMPLE:
        pool = pool[np.sort(rng.choice(len(pool), VOCABULARY_SAMPLE, replace=False))]
    centres, _ = kmeans2(
        pool.astype(np.float64), WORDS, iter=12, minit="points", seed=rng
    )
    centres = centres.astype(np.float32)
    out = np.zeros((len(descriptors), WORDS, 128), np.float32)
    c_sq = (centres**2).sum(axis=1)
    for i, s in enumerate(samples):
        if not len(s):
            continue
        word = np.argmin(c_sq[None, :] - 2 * s @ centres.T, axis=1)
        np.add.at(out[i], word, s - centres[word])
    out /= np.linalg.norm(out, axis=2, keepdims=True) + 1e-9  # intra-normalisation
    flat = out.reshape(len(descriptors), -1)
    flat = np.sign(flat) * np.sqrt(np.abs(flat))  # power law: tames bursty texture
    flat /= np.linalg.norm(flat, axis=1, keepdims=True) + 1e-9
    return flat


def moving_features(
    positions: Sequence[NDArray[np.float32]], cell: float = 2.0
) -> list[NDArray[np.bool_]]:
    """Per photo, which keypoints are not part of a still backdrop.

    A keypoint whose position (to ``cell`` pixels) holds a keypoint in at least
    a quarter of the photos (one ring of a tilting rig) sits on something that
    never moved relative to the camera: a rig's backdrop, a watermark, dust on
    the lens. Left in, it makes
    every photo look like every other; on a moving camera such cells are
    occupied by chance in a few percent of the photos at most.
    """
    cells = [np.unique(np.floor(p / cell).astype(np.int64), axis=0) for p in positions]
    keys = [c[:, 0] * 1_000_003 + c[:, 1] for c in cells]
    pooled, counts = (
        np.unique(np.concatenate(keys), return_counts=True) if keys else ([], [])
    )
    still = pooled[(counts * 4 >= len(positions)) & (counts >= 3)]
    out = []
    for p in positions:
        c = np.floor(p / cell).astype(np.int64)
        out.append(~np.isin(c[:, 0] * 1_000_003 + c[:, 1], still))
    return out


def ranked_neighbours(vectors: NDArray[np.float32]) -> NDArray[np.intp]:
    """Per photo, all other photos ordered by similarity (ties by index)."""
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -np.inf)
    # A stable sort on the negated similarity keeps the order thread-independent.
    order = np.argsort(-sim, axis=1, kind="stable")
    return order[:, : len(vectors) - 1]


def order_pairs(order: Sequence[int], window: int) -> set[Pair]:
    """Neighbours within ``window`` along one capture order (a prior, not a rule)."""
    pairs: set[Pair] = set()
    for pos, a in enumerate(order):
        for b in order[pos + 1 : pos + 1 + window]:
            pairs.add((min(a, b), max(a, b)))
    return pairs


def plan_pairs(
    descriptors: Sequence[NDArray[np.uint8]],
    *,
    neighbours: int,
    positions: Sequence[NDArray[np.float32]] | None = None,
    orders: Sequence[Sequence[int]] = (),
    order_window: int = 2,
) -> PairPlan:
    """Exhaustive when that costs no more than retrieval, else content-based pairs."""
    count = len(descriptors)
    if count - 1 <= 2 * neighbours:
        return PairPlan(
            "exhaustive",
            f"{count} photos: every pair ({count * (count - 1) // 2}) costs no more "
            f"than {neighbours} retrieved neighbours each",
            tuple(exhaustive_pairs(count)),
            np.zeros((count, 0), np.intp),  # nothing left to rescue with
        )
    if positions is not None and len(positions) >= 4:
        keep = moving_features(positions)
        descriptors = [d[k] for d, k in zip(descriptors, keep, strict=True)]
    ranked = ranked_neighbours(vlad_vectors(descriptors))
    pairs: set[Pair] = set()
    for a in range(count):
        for b in ranked[a, :neighbours]:
            pairs.add((min(a, int(b)), max(a, int(b))))
    for order in orders:
        pairs |= order_pairs(order, order_window)
    return PairPlan(
        "retrieval",
        f"{count} photos: {neighbours} most similar photos each by content "
        f"(VLAD over the set's own SIFT words), plus capture-order neighbours",
        tuple(sorted(pairs)),
        ranked,
    )


def rescue_pairs(
    unplaced: Sequence[int],
    ranked: NDArray[np.intp],
    done: set[Pair],
    *,
    budget: int,
) -> list[Pair]:
    """Second chance for unplaced photos: their best candidates not yet matched.

    Each unplaced photo gets up to ``budget`` new partners in similarity order,
    so a small remainder is matched against every other photo.
    """
    out: list[Pair] = []
    for a in unplaced:
        added = 0
        for b in ranked[a]:
            pair = (min(a, int(b)), max(a, int(b)))
            if pair in done:
                continue
            done.add(pair)
            out.append(pair)
            added += 1
            if added >= budget:
                break
    return out
