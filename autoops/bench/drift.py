"""``autoops bench drift``: false alarms and power of the drift test beside two peer defaults.

Sample pairs come from river's in-package synthetic streams (reference = the first ``n`` rows
of a seeded stream, current = the next ``n``) and from tabular data that ships with
scikit-learn (two disjoint random halves, so the pair is exchangeable under no shift). Shifts are
injected into the current sample only:

- ``none``: nothing (the false-alarm rate).
- ``mean``: one numeric feature moved by ``size`` reference standard deviations.
- ``variance``: the same feature's spread around its mean scaled by ``size``.
- ``correlation``: the same feature shuffled among a ``size`` share of the current rows, which
  breaks its dependence on the other features while keeping every marginal exactly.
- ``category``: a ``size`` share of a categorical feature's values set to its most common
  reference category.

Beside :func:`autoops.core.detect.drift.drift_test` it runs two baselines written here from
their documented defaults (neither package is installed): Alibi Detect's ``TabularDrift``
(per-feature KS for numeric and chi-squared for categorical features, Bonferroni) and Evidently's
default data-drift preset (per-column test chosen by size and type; dataset drift when at least
half the columns drift). See ``ANCHORS`` for the sources.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

from autoops.bench.common import BenchResult, machine_info
from autoops.core.detect.drift import drift_test, normalised_wasserstein

__all__ = [
    "ANCHORS",
    "SHIFT_SIZES",
    "DatasetSpec",
    "alibi_tabular_drift",
    "datasets",
    "evidently_dataset_drift",
    "run_drift_bench",
]

Columns = dict[str, npt.NDArray[Any]]
PairFn = Callable[[np.random.Generator], tuple[Columns, Columns]]

ALPHA = 0.01

SHIFT_SIZES: dict[str, tuple[float, ...]] = {
    "mean": (0.1, 0.25, 0.5),
    "variance": (1.1, 1.25, 1.5),
    "correlation": (0.25, 0.5, 1.0),
    "category": (0.05, 0.1, 0.25),
}
"""Shift sizes per kind: SDs of mean shift, spread factors, shuffled shares, replaced shares."""

SINGLE_FEATURE_SHIFTS = ("mean", "variance", "category")
JOINT_SHIFTS = ("correlation",)

ANCHORS: dict[str, Any] = {
    "alibi_detect_tabular_drift": {
        "defaults": "TabularDrift(x_ref, p_val=0.05, categories_per_feature=None, "
        "correction='bonferroni'): feature-wise two-sample KS for numeric and chi-squared for "
        "categorical features; drift when any feature's p-value < p_val / n_features.",
        "here": "implemented from those defaults; run at p_val=0.01 (the column "
        "'alibi_ks_bonferroni', same alpha as ours) and at its default p_val=0.05 "
        "('alibi_default_p05').",
        "source": "https://docs.seldon.ai/alibi-detect/api-reference/cd/tabular",
    },
    "evidently_data_drift": {
        "defaults": "per column, reference <= 1000 rows: KS (numeric with > 5 unique values), "
        "chi-squared (categorical or <= 5 unique values), two-proportion z-test (<= 2 unique "
        "values), each drifting at p < 0.05; reference > 1000 rows: normalised Wasserstein "
        "distance (numeric) or Jensen-Shannon distance (categorical), drifting at >= 0.1; "
        "dataset drift when the share of drifting columns is >= 0.5.",
        "here": "implemented from those defaults ('evidently_default'); not run through the "
        "evidently package.",
        "source": "https://docs-old.evidentlyai.com/reference/data-drift-algorithm; "
        "https://github.com/evidentlyai/evidently/releases/tag/v0.1.50.dev0",
    },
}


# --------------------------------------------------------------------------- baselines


def alibi_tabular_drift(
    reference: Mapping[str, npt.NDArray[Any]],
    current: Mapping[str, npt.NDArray[Any]],
    categorical: frozenset[str],
    p_val: float,
) -> bool:
    """Alibi Detect's TabularDrift default: KS / chi-squared per feature, Bonferroni."""
    p_values = []
    for name, ref in reference.items():
        cur = current[name]
        if name in categorical:
            p_values.append(_chi2_p(ref, cur))
        else:
            p_values.append(float(stats.ks_2samp(ref, cur, method="asymp").pvalue))
    return min(p_values) < p_val / len(p_values)


def _chi2_p(reference: npt.NDArray[Any], current: npt.NDArray[Any]) -> float:
    """Chi-squared homogeneity p-value on raw category counts (1.0 for a single category)."""
    categories, inverse = np.unique(
        np.concatenate([reference.astype(str), current.astype(str)]), return_inverse=True
    )
    if len(categories) < 2:
        return 1.0
    counts = np.zeros((2, len(categories)))
    np.add.at(counts[0], inverse[: len(reference)], 1)
    np.add.at(counts[1], inverse[len(reference) :], 1)
    return float(stats.chi2_contingency(counts).pvalue)


def _z_test_p(reference: npt.NDArray[Any], current: npt.NDArray[Any]) -> float:
    """Two-proportion z-test p-value on the first category's share (Evidently, binary)."""
    first = np.unique(np.concatenate([reference.astype(str), current.astype(str)]))[0]
    p1 = float(np.mean(reference.astype(str) == first))
    p2 = float(np.mean(current.astype(str) == first))
    n1, n2 = len(reference), len(current)
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(2 * stats.norm.sf(abs(z)))


def _js_distance(reference: npt.NDArray[Any], current: npt.NDArray[Any]) -> float:
    """Jensen-Shannon distance between the two samples' category shares."""
    categories = np.unique(np.concatenate([reference.astype(str), current.astype(str)]))
    r = np.array([np.mean(reference.astype(str) == c) for c in categories])
    c = np.array([np.mean(current.astype(str) == c) for c in categories])
    return float(distance.jensenshannon(r, c))


def evidently_dataset_drift(
    reference: Mapping[str, npt.NDArray[Any]],
    current: Mapping[str, npt.NDArray[Any]],
    categorical: frozenset[str],
) -> bool:
    """Evidently's default dataset drift: per-column default test, drift if >= 50% drift."""
    drifted = 0
    for name, ref in reference.items():
        cur = current[name]
        n_unique = len(np.unique(np.concatenate([ref.astype(str), cur.astype(str)])))
        as_categorical = name in categorical or n_unique <= 5
        if len(ref) <= 1000:
            if not as_categorical:
                hit = float(stats.ks_2samp(ref, cur).pvalue) < 0.05
            elif n_unique <= 2:
                hit = _z_test_p(ref, cur) < 0.05
            else:
                hit = _chi2_p(ref, cur) < 0.05
        elif as_categorical:
            hit = _js_distance(ref, cur) >= 0.1
        else:
            hit = normalised_wasserstein(ref.astype(float), cur.astype(float)) >= 0.1
        drifted += int(hit)
    return drifted / len(reference) >= 0.5


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetSpec:
    """A source of seeded (reference, current) pairs and the features shifts act on."""

    name: str
    source: str
    pair: PairFn
    shift_feature: str
    categorical: frozenset[str] = field(default_factory=frozenset)
    category_feature: str | None = None
    rows: int = 0
    """Rows per side."""


def _river_table(
    stream: Iterator[tuple[dict[Any, Any], Any]], rows: int
) -> tuple[list[str], Columns]:
    """The first ``rows`` rows of a river stream as named columns."""
    taken = [x for x, _ in islice(stream, rows)]
    keys = list(taken[0])
    return [str(k) for k in keys], {str(k): np.asarray([r[k] for r in taken]) for k in keys}


def _pool_pair(columns: Columns, n: int) -> PairFn:
    """Two disjoint random subsets of n rows each from a fixed table of columns."""

    def pair(rng: np.random.Generator) -> tuple[Columns, Columns]:
        size = len(next(iter(columns.values())))
        order = rng.permutation(size)
        return (
            {k: v[order[:n]] for k, v in columns.items()},
            {k: v[order[n : 2 * n]] for k, v in columns.items()},
        )

    return pair


def _split_pair(data: npt.NDArray[np.float64], names: list[str], n: int) -> PairFn:
    """Two disjoint random subsets of n rows each from a fixed table."""

    def pair(rng: np.random.Generator) -> tuple[Columns, Columns]:
        order = rng.permutation(len(data))
        ref, cur = data[order[:n]], data[order[n : 2 * n]]
        return (
            {k: ref[:, i] for i, k in enumerate(names)},
            {k: cur[:, i] for i, k in enumerate(names)},
        )

    return pair


def datasets(river_rows: int = 1100, river_pool: int = 30_000, seed: int = 0) -> list[DatasetSpec]:
    """The benchmark's data sources: two river streams and three scikit-learn tables.

    Each river stream is drawn once (``river_pool`` rows, seeded); every pair is then two
    disjoint random subsets of ``river_rows`` rows of it, so no pair shares a row.
    """
    from river.datasets import synth
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    _, agrawal = _river_table(iter(synth.Agrawal(seed=seed)), river_pool)
    rbf_stream = synth.RandomRBF(
        seed_model=7, seed_sample=seed, n_classes=2, n_features=6, n_centroids=4
    )
    _, rbf = _river_table(iter(rbf_stream), river_pool)
    specs = [
        DatasetSpec(
            name="river_agrawal",
            source=f"river.datasets.synth.Agrawal(classification_function=0, seed={seed}): "
            f"{river_pool} rows, two disjoint random subsets per pair",
            pair=_pool_pair(agrawal, river_rows),
            shift_feature="commission",
            categorical=frozenset({"elevel", "car", "zipcode"}),
            category_feature="car",
            rows=river_rows,
        ),
        DatasetSpec(
            name="river_random_rbf",
            source=f"river.datasets.synth.RandomRBF(seed_model=7, seed_sample={seed}, "
            f"n_classes=2, n_features=6, n_centroids=4): {river_pool} rows, two disjoint random "
            "subsets per pair",
            pair=_pool_pair(rbf, river_rows),
            shift_feature="0",
            rows=river_rows,
        ),
    ]
    for loader, n in ((load_wine, 89), (load_breast_cancer, 250), (load_diabetes, 200)):
        bunch = loader()
        names = [str(f) for f in bunch.feature_names]
        data = np.asarray(bunch.data, dtype=np.float64)
        corr = np.asarray(np.corrcoef(data.T), dtype=np.float64)
        np.fill_diagonal(corr, 0.0)
        continuous = [i for i in range(data.shape[1]) if len(np.unique(data[:, i])) > 5]
        shift = max(continuous, key=lambda i: float(np.abs(corr[i]).max()))
        binary = [names[i] for i in range(data.shape[1]) if len(np.unique(data[:, i])) <= 5]
        specs.append(
            DatasetSpec(
                name=f"sklearn_{loader.__name__.removeprefix('load_')}",
                source=f"sklearn.datasets.{loader.__name__}() ({len(data)} rows), "
                f"two disjoint random halves of {n} rows",
                pair=_split_pair(data, names, n),
                shift_feature=names[shift],
                categorical=frozenset(binary),
                category_feature=binary[0] if binary else None,
                rows=n,
            )
        )
    return specs


# --------------------------------------------------------------------------- shifts


def _shift(
    spec: DatasetSpec,
    reference: Columns,
    current: Columns,
    kind: str,
    size: float,
    rng: np.random.Generator,
) -> Columns:
    """A copy of ``current`` with the shift applied."""
    out = {k: v.copy() for k, v in current.items()}
    f = spec.shift_feature
    ref_f = reference[f].astype(np.float64)
    if kind == "mean":
        out[f] = current[f].astype(np.float64) + size * float(ref_f.std())
    elif kind == "variance":
        cur_f = current[f].astype(np.float64)
        out[f] = float(ref_f.mean()) + (cur_f - float(ref_f.mean())) * size
    elif kind == "correlation":
        rows = np.flatnonzero(rng.random(len(current[f])) < size)
        out[f][rows] = current[f][rng.permutation(rows)]
    elif kind == "category":
        c = spec.category_feature
        assert c is not None
        values, counts = np.unique(reference[c], return_counts=True)
        replaced = rng.random(len(current[c])) < size
        out[c][replaced] = values[int(counts.argmax())]
    elif kind != "none":
        raise ValueError(f"unknown shift {kind!r}")
    return out


# --------------------------------------------------------------------------- the run

METHODS = ("ours", "alibi_ks_bonferroni", "evidently_default", "alibi_default_p05")


def _cell(
    spec: DatasetSpec,
    kind: str,
    size: float,
    runs: int,
    seed: int,
    permutations: int,
    max_samples: int,
) -> dict[str, Any]:
    """Detection rate of each method over ``runs`` seeded pairs for one dataset and shift."""
    rng = np.random.default_rng(
        [seed, zlib.crc32(spec.name.encode()), zlib.crc32(kind.encode()), int(size * 1000)]
    )
    hits = dict.fromkeys(METHODS, 0)
    for run in range(runs):
        reference, current = spec.pair(rng)
        current = _shift(spec, reference, current, kind, size, rng)
        report = drift_test(
            reference,
            current,
            alpha=ALPHA,
            categorical=spec.categorical,
            seed=seed * 100_003 + run,
            permutations=permutations,
            max_samples=max_samples,
        )
        hits["ours"] += int(report.drift)
        hits["alibi_ks_bonferroni"] += int(
            alibi_tabular_drift(reference, current, spec.categorical, ALPHA)
        )
        hits["alibi_default_p05"] += int(
            alibi_tabular_drift(reference, current, spec.categorical, 0.05)
        )
        hits["evidently_default"] += int(
            evidently_dataset_drift(reference, current, spec.categorical)
        )
    return {
        "dataset": spec.name,
        "shift": kind,
        "size": size,
        "runs": runs,
        **{m: hits[m] / runs for m in METHODS},
    }


def _wilson_upper(hits: int, n: int, z: float = 1.96) -> float:
    """Upper end of the Wilson 95% interval of a proportion."""
    if n == 0:
        return 1.0
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def _mean_rate(cells: list[dict[str, Any]], method: str) -> float:
    """Average detection rate of one method over cells (each cell weighs the same)."""
    return float(np.mean([c[method] for c in cells])) if cells else float("nan")


def run_drift_bench(
    runs: int = 30,
    seed: int = 0,
    *,
    null_factor: int = 10,
    permutations: int = 300,
    max_samples: int = 500,
    river_rows: int = 1100,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Run every dataset x shift x size cell; ``runs`` pairs per shifted cell.

    The no-shift cells get ``runs * null_factor`` pairs, so the false-alarm rate is measured on
    many more pairs than the power.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    specs = datasets(river_rows, seed=seed)
    cells: list[dict[str, Any]] = []
    for spec in specs:
        plan: list[tuple[str, float, int]] = [("none", 0.0, runs * null_factor)]
        for kind, sizes in SHIFT_SIZES.items():
            if kind == "category" and spec.category_feature is None:
                continue
            plan += [(kind, size, runs) for size in sizes]
        for kind, size, n in plan:
            cells.append(_cell(spec, kind, size, n, seed, permutations, max_samples))
            if progress is not None:
                progress(f"{spec.name} {kind} {size:g}")

    null_cells = [c for c in cells if c["shift"] == "none"]
    pairs = sum(c["runs"] for c in null_cells)
    false_alarms: dict[str, Any] = {"pairs": pairs}
    for method in METHODS:
        hits = round(sum(c[method] * c["runs"] for c in null_cells))
        false_alarms[method] = hits / pairs
        false_alarms[f"{method}_upper95"] = _wilson_upper(hits, pairs)
    false_alarms["by_dataset"] = {
        c["dataset"]: {m: c[m] for m in METHODS} | {"runs": c["runs"]} for c in null_cells
    }

    power: dict[str, dict[str, dict[str, float]]] = {}
    for kind, sizes in SHIFT_SIZES.items():
        power[kind] = {}
        for size in sizes:
            same = [c for c in cells if c["shift"] == kind and c["size"] == size]
            power[kind][f"{size:g}"] = {m: _mean_rate(same, m) for m in METHODS}

    def family(kinds: tuple[str, ...], method: str) -> float:
        return _mean_rate([c for c in cells if c["shift"] in kinds], method)

    summary = {
        kinds_name: {m: family(kinds, m) for m in METHODS}
        for kinds_name, kinds in (
            ("single_feature", SINGLE_FEATURE_SHIFTS),
            ("joint", JOINT_SHIFTS),
        )
    }
    single_cells = [c for c in cells if c["shift"] in SINGLE_FEATURE_SHIFTS]
    goals = {
        "false_alarms_le_alpha": false_alarms["ours"] <= ALPHA,
        "single_feature_power_ge_ks": summary["single_feature"]["ours"]
        >= summary["single_feature"]["alibi_ks_bonferroni"],
        "single_feature_cells_below_ks_by_more_than_0.05": [
            f"{c['dataset']}/{c['shift']}/{c['size']:g}"
            for c in single_cells
            if c["ours"] < c["alibi_ks_bonferroni"] - 0.05
        ],
        "joint_power_ours_minus_ks": summary["joint"]["ours"]
        - summary["joint"]["alibi_ks_bonferroni"],
    }
    config = {
        "alpha": ALPHA,
        "runs_per_shift_cell": runs,
        "runs_per_no_shift_cell": runs * null_factor,
        "seed": seed,
        "permutations": permutations,
        "mmd_max_samples_per_side": max_samples,
        "shift_sizes": {k: list(v) for k, v in SHIFT_SIZES.items()},
        "datasets": {
            s.name: {
                "source": s.source,
                "rows_per_side": s.rows,
                "shift_feature": s.shift_feature,
                "categorical": sorted(s.categorical),
                "category_feature": s.category_feature,
            }
            for s in specs
        },
        "ours": "drift_test defaults: per-feature KS/chi-squared with Holm at alpha/2, "
        "MMD (RBF, median heuristic, permutation) at alpha/2",
    }
    results = {
        "false_alarm_rate": false_alarms,
        "power": power,
        "power_summary": summary,
        "goals": goals,
        "cells": cells,
    }
    return BenchResult(
        name="drift", config=config, machine=machine_info(), results=results, anchors=ANCHORS
    )
