"""Two-sample drift tests between a reference sample and a current one (pure, no I/O).

Per feature: a Kolmogorov-Smirnov test for numeric features (or, by choice, a permutation test on
the normalised Wasserstein distance or on the PSI) and a chi-squared test for categorical ones,
corrected with Holm. Across features, a joint test in torch that sees shifts whose marginals do not
move, calibrated on seeded permutations: by default a k-nearest-neighbour two-sample test (a
leave-one-out k-NN classifier test, Schilling 1986), with the MMD (RBF kernel, median-heuristic
width) computed on the same permutations and reported beside it (``joint="mmd"`` or ``"max-z"``
let it decide instead). The default is k-NN because the median-width MMD barely sees a feature
decoupled from the features it was correlated with: on ``autoops bench drift``'s correlation
shifts it found 0-25% where k-NN found 55-100%.

How the overall false-alarm rate stays at ``alpha``: the two families split it (weighted
Bonferroni). The per-feature family gets ``alpha * (1 - multivariate_share)`` and corrects inside
itself with Holm; the joint test gets ``alpha * multivariate_share``. The overall p-value is
``min(m * min_i p_i / (1 - share), p_joint / share)`` capped at 1, and ``drift`` is exactly
``p_value <= alpha``; under no drift its probability is at most ``alpha`` whatever the dependence
between the tests. With a single usable column there is no joint test and the features get all of
``alpha``.

Input handling, documented once here:

- Rows with a missing value (NaN, infinity, ``None`` or ``""``) in any column are dropped from
  that sample; the counts are in :attr:`DriftReport.dropped_reference` / ``dropped_current``.
- Fewer than :data:`MIN_SAMPLES` complete rows on either side raises :class:`DriftDataError`.
- A feature that is constant with the same value in both samples has no drift (statistic 0,
  p-value 1, method ``constant``) and is left out of the joint test. A feature constant in both
  samples but at different values is tested as usual (KS statistic 1: a drift).
- Reference and current must name the same columns; a difference raises :class:`DriftDataError`.
- Categorical features are compared as strings; categories seen fewer than five times in both
  samples together are pooled into one bucket so the chi-squared approximation holds.
- Beyond ``max_samples`` rows per side, the joint test runs on a seeded subsample of that size
  (its cost is quadratic); the per-feature tests always use every row.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import torch
from scipy import stats

from autoops.model import Finding, FindingKind, Verdict

__all__ = [
    "MIN_SAMPLES",
    "DriftDataError",
    "DriftMonitor",
    "DriftReport",
    "FeatureResult",
    "JointRule",
    "JointTestResult",
    "MultivariateResult",
    "NumericTest",
    "bonferroni",
    "drift_test",
    "holm",
    "holm_adjusted",
    "joint_test",
    "ks_test",
    "normalised_wasserstein",
    "psi",
]

MIN_SAMPLES = 20
"""Fewest complete rows a sample may have; fewer raises :class:`DriftDataError`."""

NumericTest = Literal["ks", "wasserstein", "psi"]
"""Which test gives a numeric feature its p-value (the other two are still reported as effects)."""

FloatArray = npt.NDArray[np.float64]
_RARE_CATEGORY = 5
_KS_EXACT_MAX = 10_000  # n * m up to which the KS p-value is exact; asymptotic beyond
_OTHER = "\x00other"
_PSI_BINS = 10
_PSI_EPS = 1e-4


class DriftDataError(ValueError):
    """The samples cannot be tested: too few rows, mismatched or non-numeric columns."""


# --------------------------------------------------------------------------- corrections


def bonferroni(p_values: Sequence[float], alpha: float) -> tuple[bool, ...]:
    """Reject each hypothesis whose p-value is at most ``alpha / m`` (Bonferroni)."""
    m = len(p_values)
    return tuple(p <= alpha / m for p in p_values)


def holm(p_values: Sequence[float], alpha: float) -> tuple[bool, ...]:
    """Reject hypotheses by Holm's step-down procedure at family-wise error rate ``alpha``."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rejected = [False] * m
    for step, i in enumerate(order):
        if p_values[i] > alpha / (m - step):
            break
        rejected[i] = True
    return tuple(rejected)


def holm_adjusted(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm-adjusted p-values: hypothesis i is rejected at ``alpha`` iff its value is <= alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for step, i in enumerate(order):
        running = max(running, min(1.0, (m - step) * p_values[i]))
        adjusted[i] = running
    return tuple(adjusted)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FeatureResult:
    """One feature's test: its statistic, raw p-value, verdict after correction, and method."""

    statistic: float
    p_value: float
    drift: bool
    method: str
    adjusted_p_value: float = 1.0
    """Holm-adjusted within the per-feature family; drift iff it is <= the family's alpha."""
    effects: Mapping[str, float] = field(default_factory=dict)
    """Effect sizes whatever the test: ``ks``, ``wasserstein_norm``, ``psi`` or ``cramers_v``."""


@dataclass(frozen=True, slots=True)
class MultivariateResult:
    """The joint test (k-NN and MMD on shared permutations) over all usable columns."""

    statistic: float
    """The deciding statistic (k-NN: share of nearest neighbours from the same sample)."""
    p_value: float
    drift: bool
    method: str
    bandwidth: float
    """RBF kernel width: the median pairwise distance of the pooled, standardised sample."""
    permutations: int
    columns: tuple[str, ...]
    components: Mapping[str, float] = field(default_factory=dict)
    """Each component test's own p-value (MMD per width, k-NN)."""
    statistics: Mapping[str, float] = field(default_factory=dict)
    """Each component test's observed statistic."""


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The overall verdict, its p-value, and every test behind it."""

    drift: bool
    p_value: float
    method: str
    alpha: float
    features: Mapping[str, FeatureResult]
    multivariate: MultivariateResult | None
    n_reference: int
    n_current: int
    dropped_reference: int = 0
    """Reference rows dropped for a missing value."""
    dropped_current: int = 0
    """Current rows dropped for a missing value."""

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Names of the features whose own test found drift after correction."""
        return tuple(name for name, result in self.features.items() if result.drift)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON data: drift, p_value, method and features."""
        return {
            "drift": self.drift,
            "p_value": self.p_value,
            "method": self.method,
            "features": {
                name: {
                    "statistic": r.statistic,
                    "p_value": r.p_value,
                    "drift": r.drift,
                    "method": r.method,
                }
                for name, r in self.features.items()
            },
        }

    def to_finding(
        self, version: str | None, signal: str = "inputs", region: str | None = None
    ) -> Finding:
        """A drift finding for the decision core: FAIL on drift, PASS otherwise."""
        statistics: dict[str, float] = {
            "p_value": self.p_value,
            "alpha": self.alpha,
            "n_reference": float(self.n_reference),
            "n_current": float(self.n_current),
            "dropped_reference": float(self.dropped_reference),
            "dropped_current": float(self.dropped_current),
            "drifted_features": float(len(self.drifted_features)),
            "features": float(len(self.features)),
        }
        if self.multivariate is not None:
            statistics["multivariate_statistic"] = self.multivariate.statistic
            statistics["multivariate_p_value"] = self.multivariate.p_value
        for name, result in self.features.items():
            statistics[f"p_value.{name}"] = result.p_value
        return Finding(
            kind=FindingKind.DRIFT,
            detector="drift_test",
            verdict=Verdict.FAIL if self.drift else Verdict.PASS,
            signal=signal,
            version=version,
            region=region,
            score=1.0 - self.p_value,
            statistics=statistics,
        )


# --------------------------------------------------------------------------- statistics


def ks_test(reference: FloatArray, current: FloatArray) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov statistic and p-value."""
    exact = len(reference) * len(current) <= _KS_EXACT_MAX
    method = "exact" if exact else "asymp"
    result = stats.ks_2samp(reference, current, alternative="two-sided", method=method)
    return float(result.statistic), float(result.pvalue)


def normalised_wasserstein(reference: FloatArray, current: FloatArray) -> float:
    """Wasserstein-1 distance divided by the reference's standard deviation (pooled if it is 0)."""
    scale = float(np.std(reference))
    if scale == 0.0:
        scale = float(np.std(np.concatenate([reference, current])))
    if scale == 0.0:
        return 0.0
    return float(stats.wasserstein_distance(reference, current)) / scale


def psi(reference: FloatArray, current: FloatArray, bins: int = _PSI_BINS) -> float:
    """Population stability index over bins cut at the reference's quantiles.

    Read it by the usual convention: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a
    large one. It is a statistic, not a test; ``drift_test(numeric_test="psi")`` gives it a
    permutation p-value.
    """
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    ref_counts = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    cur_counts = np.bincount(
        np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1
    )
    r = np.maximum(ref_counts / len(reference), _PSI_EPS)
    c = np.maximum(cur_counts / len(current), _PSI_EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def _permutation_p_value(
    reference: FloatArray,
    current: FloatArray,
    statistic: Any,
    permutations: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Observed statistic and its permutation p-value, (1 + #{perm >= obs}) / (1 + B)."""
    observed = float(statistic(reference, current))
    pooled = np.concatenate([reference, current])
    n = len(reference)
    exceed = 0
    for _ in range(permutations):
        shuffled = rng.permutation(pooled)
        if float(statistic(shuffled[:n], shuffled[n:])) >= observed - 1e-12:
            exceed += 1
    return observed, (1 + exceed) / (1 + permutations)


BANDWIDTH_FACTORS = (1.0,)
"""RBF widths, as multiples of the median pairwise distance (1.0 is the median heuristic)."""

JointRule = Literal["knn", "mmd", "max-z"]
"""Which joint statistic decides: k-NN, MMD at the first width, or the largest standardised one."""

NEIGHBOURS = 10
"""k of the nearest-neighbour two-sample statistic."""


@dataclass(frozen=True, slots=True)
class JointTestResult:
    """The multivariate test's statistics, their own p-values, and the deciding p-value."""

    statistic: float
    """The deciding statistic: k-NN same-sample share, MMD², or the largest z."""

    mmd2: float
    """Biased MMD² at the median-heuristic width."""
    p_value: float
    """The deciding p-value (k-NN by default; see ``decide_by``)."""
    bandwidth: float
    components: Mapping[str, float]
    """Each component's own permutation p-value: ``mmd@<factor>`` and ``knn@<k>``."""
    statistics: Mapping[str, float]
    """Each component's observed statistic."""


def _standardised_sq_distances(
    pooled: FloatArray, standardise: npt.NDArray[np.bool_] | None
) -> torch.Tensor:
    """Squared Euclidean distances between rows, the chosen columns standardised (pooled)."""
    mask = np.ones(pooled.shape[1], dtype=bool) if standardise is None else standardise
    scale = pooled.std(axis=0)
    scale[(scale == 0.0) | ~mask] = 1.0
    centre = np.where(mask, pooled.mean(axis=0), 0.0)
    z = torch.from_numpy((pooled - centre) / scale)
    return torch.cdist(z, z).pow(2)


def _median_sq_distance(d2: torch.Tensor) -> float:
    """Median of the positive off-diagonal squared distances (1.0 if there are none)."""
    size = d2.shape[0]
    upper = d2[torch.triu_indices(size, size, offset=1).unbind()]
    positive = upper[upper > 0]
    return float(positive.median()) if positive.numel() else 1.0


def _rank_p_values(values: torch.Tensor) -> torch.Tensor:
    """For each row's statistic, the share of all rows (itself included) at least as large."""
    ordered = torch.sort(values).values
    below = torch.searchsorted(ordered, values - 1e-12, right=False)
    return (len(values) - below).to(torch.float64) / len(values)


def joint_test(
    reference: FloatArray,
    current: FloatArray,
    permutations: int = 500,
    seed: int = 0,
    bandwidth_factors: Sequence[float] = BANDWIDTH_FACTORS,
    neighbours: int = NEIGHBOURS,
    decide_by: JointRule = "knn",
    standardise: npt.NDArray[np.bool_] | None = None,
) -> JointTestResult:
    """A multivariate two-sample test: a k-NN statistic and the MMD, on shared permutations.

    The k-NN statistic is the share of each point's ``k`` nearest neighbours drawn from its own
    sample (Schilling's test: a leave-one-out nearest-neighbour classifier two-sample test). The
    MMD uses an RBF kernel whose width is the median pairwise distance (the median heuristic)
    times each factor. ``decide_by`` picks the p-value returned: ``knn`` (the default; the most
    powerful in ``autoops bench drift``), ``mmd`` (the first width), or ``max-z`` (each statistic
    standardised over the permutations, the largest calibrated on the same permutations). Every
    p-value is ``(1 + #{permuted >= observed}) / (1 + permutations)``, exact because columns are
    standardised by the pooled sample, so distances, widths and neighbours ignore the labels.
    ``standardise`` (one flag per column, default all) leaves unflagged columns as given.
    """
    n, m = len(reference), len(current)
    total = n + m
    d2 = _standardised_sq_distances(np.vstack([reference, current]).astype(np.float64), standardise)
    median = _median_sq_distance(d2)
    generator = torch.Generator().manual_seed(seed)
    order = torch.argsort(torch.rand(permutations, total, generator=generator), dim=1)
    identity = torch.arange(total).unsqueeze(0)
    order = torch.cat([identity, order])  # row 0: the observed labelling
    weights = torch.cat(
        [
            torch.full((n,), 1.0 / n, dtype=torch.float64),
            torch.full((m,), -1.0 / m, dtype=torch.float64),
        ]
    )
    signs = weights[order]
    columns: dict[str, torch.Tensor] = {}
    for factor in bandwidth_factors:
        kernel = torch.exp(-d2 / (2.0 * median * factor * factor))
        columns[f"mmd@{factor:g}"] = ((signs @ kernel) * signs).sum(dim=1)
    k = min(neighbours, total - 1)
    if k >= 1:
        masked = d2.clone()
        masked.fill_diagonal_(float("inf"))
        near = masked.topk(k, largest=False).indices
        labels = (order >= n).to(torch.int8)  # 1 where the permuted row is labelled current
        columns[f"knn@{k}"] = (
            (labels.unsqueeze(2) == labels[:, near]).to(torch.float64).mean(dim=(1, 2))
        )
    p_each = {name: _rank_p_values(values) for name, values in columns.items()}
    if decide_by == "knn" and f"knn@{k}" in p_each:
        combined = float(p_each[f"knn@{k}"][0])
        decided = float(columns[f"knn@{k}"][0])
    elif decide_by == "mmd" or (decide_by == "knn" and bandwidth_factors):
        combined = float(p_each[f"mmd@{bandwidth_factors[0]:g}"][0])
        decided = float(columns[f"mmd@{bandwidth_factors[0]:g}"][0])
    else:
        stacked = torch.stack(list(columns.values()))
        spread = stacked.std(dim=1, keepdim=True)
        spread[spread == 0.0] = 1.0
        max_z = ((stacked - stacked.mean(dim=1, keepdim=True)) / spread).max(dim=0).values
        combined = float((max_z >= max_z[0] - 1e-12).sum()) / (permutations + 1)
        decided = float(max_z[0])
    return JointTestResult(
        statistic=decided,
        mmd2=float(columns[f"mmd@{bandwidth_factors[0]:g}"][0])
        if bandwidth_factors
        else float("nan"),
        p_value=combined,
        bandwidth=math.sqrt(median) * (bandwidth_factors[0] if bandwidth_factors else 1.0),
        components={name: float(p[0]) for name, p in p_each.items()},
        statistics={name: float(v[0]) for name, v in columns.items()},
    )


# --------------------------------------------------------------------------- input handling


@dataclass(frozen=True, slots=True)
class _Sample:
    """Columns of one sample after dropping incomplete rows."""

    numeric: dict[str, FloatArray]
    categorical: dict[str, npt.NDArray[np.str_]]
    rows: int
    dropped: int


def _is_missing(value: Any) -> bool:
    """True for None, empty strings and non-finite floats."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, float | np.floating):
        return not math.isfinite(float(value))
    return False


def _as_float(raw: npt.NDArray[Any]) -> FloatArray | None:
    """The column as floats (missing values as NaN), or None when a value is not a number."""
    if raw.dtype.kind in "biuf":
        return raw.astype(np.float64)
    out = np.empty(len(raw), dtype=np.float64)
    for i, value in enumerate(raw):
        if _is_missing(value):
            out[i] = np.nan
            continue
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            return None
    return out


def _columns(
    data: Mapping[str, Sequence[Any] | npt.NDArray[Any]] | npt.NDArray[Any],
    names: Sequence[str] | None,
    side: str,
) -> dict[str, npt.NDArray[Any]]:
    """Turn a mapping of columns or a 2-D array (with names) into named 1-D arrays."""
    if isinstance(data, Mapping):
        columns = {str(k): np.asarray(v) for k, v in data.items()}
    else:
        array = np.asarray(data)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise DriftDataError(f"{side}: expected a 2-D array, got {array.ndim} dimensions")
        labels = list(names) if names is not None else [f"x{i}" for i in range(array.shape[1])]
        if len(labels) != array.shape[1]:
            raise DriftDataError(
                f"{side}: {array.shape[1]} columns but {len(labels)} names were given"
            )
        columns = {label: array[:, i] for i, label in enumerate(labels)}
    if not columns:
        raise DriftDataError(f"{side}: no columns")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise DriftDataError(f"{side}: columns have different lengths {sorted(lengths)}")
    return columns


def _prepare(
    columns: Mapping[str, npt.NDArray[Any]], categorical: Collection[str], side: str
) -> _Sample:
    """Split columns into numeric and categorical arrays and drop incomplete rows."""
    n = len(next(iter(columns.values())))
    keep = np.ones(n, dtype=bool)
    numeric: dict[str, FloatArray] = {}
    labels: dict[str, npt.NDArray[Any]] = {}
    for name, raw in columns.items():
        if name in categorical:
            missing = np.fromiter((_is_missing(v) for v in raw), dtype=bool, count=n)
            labels[name] = raw
        else:
            values = _as_float(raw)
            if values is None:
                raise DriftDataError(
                    f"{side}: column {name!r} is not numeric; declare it categorical"
                )
            missing = ~np.isfinite(values)
            numeric[name] = values
        keep &= ~missing
    rows = int(keep.sum())
    return _Sample(
        numeric={k: v[keep] for k, v in numeric.items()},
        categorical={
            k: np.asarray([str(x) for x in v[keep]], dtype=np.str_) for k, v in labels.items()
        },
        rows=rows,
        dropped=n - rows,
    )


# --------------------------------------------------------------------------- per-feature tests


def _numeric_feature(
    reference: FloatArray,
    current: FloatArray,
    numeric_test: NumericTest,
    permutations: int,
    rng: np.random.Generator,
) -> tuple[float, float, str, dict[str, float]]:
    """Statistic, p-value, method and effects of one numeric feature."""
    ks_stat, ks_p = ks_test(reference, current)
    effects = {
        "ks": ks_stat,
        "wasserstein_norm": normalised_wasserstein(reference, current),
        "psi": psi(reference, current),
    }
    if numeric_test == "ks":
        return ks_stat, ks_p, "ks", effects
    if numeric_test == "wasserstein":
        stat, p = _permutation_p_value(
            reference, current, normalised_wasserstein, permutations, rng
        )
        return stat, p, "wasserstein_norm_permutation", effects
    stat, p = _permutation_p_value(reference, current, psi, permutations, rng)
    return stat, p, "psi_permutation", effects


def _categorical_feature(
    reference: npt.NDArray[np.str_], current: npt.NDArray[np.str_]
) -> tuple[float, float, str, dict[str, float]]:
    """Chi-squared test of homogeneity on the category counts, rare categories pooled."""
    categories, inverse = np.unique(np.concatenate([reference, current]), return_inverse=True)
    counts = np.zeros((2, len(categories)), dtype=np.int64)
    np.add.at(counts[0], inverse[: len(reference)], 1)
    np.add.at(counts[1], inverse[len(reference) :], 1)
    total = counts.sum(axis=0)
    rare = total < _RARE_CATEGORY
    if rare.any():
        counts = np.column_stack([counts[:, ~rare], counts[:, rare].sum(axis=1)])
        counts = counts[:, counts.sum(axis=0) > 0]
    if counts.shape[1] < 2:
        return 0.0, 1.0, "constant", {"cramers_v": 0.0}
    chi2, p, _, _ = stats.chi2_contingency(counts)
    cramers_v = math.sqrt(float(chi2) / counts.sum()) if counts.sum() else 0.0
    return float(chi2), float(p), "chi2", {"cramers_v": cramers_v}


def _is_constant_pair(reference: npt.NDArray[Any], current: npt.NDArray[Any]) -> bool:
    """True when both samples hold one and the same value."""
    both = np.concatenate([reference, current])
    return bool(np.all(both == both[0]))


def _one_hot(values: npt.NDArray[np.str_], categories: Iterable[str]) -> FloatArray:
    """One column per category, 1.0 where the row has it.

    Left unstandardised, two rows of different categories are sqrt(2) apart: about the typical
    distance between two rows along one standardised numeric column.
    """
    return np.column_stack([(values == c).astype(np.float64) for c in categories])


# --------------------------------------------------------------------------- the test


def drift_test(
    reference: Mapping[str, Sequence[Any] | npt.NDArray[Any]] | npt.NDArray[Any],
    current: Mapping[str, Sequence[Any] | npt.NDArray[Any]] | npt.NDArray[Any],
    *,
    names: Sequence[str] | None = None,
    alpha: float = 0.01,
    categorical: Collection[str] = frozenset(),
    seed: int = 0,
    numeric_test: NumericTest = "ks",
    permutations: int = 500,
    multivariate: bool = True,
    multivariate_share: float = 0.5,
    max_samples: int = 1000,
    joint: JointRule = "knn",
) -> DriftReport:
    """Test whether ``current`` comes from the same distribution as ``reference``.

    ``reference`` and ``current`` are mappings of column name to values, or 2-D arrays (rows by
    columns) named by ``names``. ``alpha`` bounds the overall false-alarm rate; see the module
    docstring for how it is split, and for the handling of missing values and constant columns.
    ``permutations`` is for the joint test; the permutation-based per-feature tests
    (``numeric_test`` ``wasserstein`` or ``psi``) use at least ``2 m / alpha_features`` so their
    p-values can reach Holm's threshold (slow with many features; ``ks`` needs none).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < multivariate_share < 1.0:
        raise ValueError(f"multivariate_share must be in (0, 1), got {multivariate_share}")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    ref_cols = _columns(reference, names, "reference")
    cur_cols = _columns(current, names, "current")
    only_ref = [k for k in ref_cols if k not in cur_cols]
    only_cur = [k for k in cur_cols if k not in ref_cols]
    if only_ref or only_cur:
        raise DriftDataError(
            "reference and current have different columns: "
            f"only in reference {only_ref}, only in current {only_cur}"
        )
    unknown = sorted(set(categorical) - set(ref_cols))
    if unknown:
        raise DriftDataError(f"categorical names unknown columns {unknown}")
    ref = _prepare(ref_cols, categorical, "reference")
    cur = _prepare({k: cur_cols[k] for k in ref_cols}, categorical, "current")
    for side, sample in (("reference", ref), ("current", cur)):
        if sample.rows < MIN_SAMPLES:
            raise DriftDataError(
                f"{side}: {sample.rows} complete rows ({sample.dropped} dropped for missing "
                f"values); a drift test needs at least {MIN_SAMPLES}"
            )

    rng = np.random.default_rng(seed)
    # A permutation p-value cannot go below 1 / (B + 1): give per-feature permutation tests
    # enough permutations to reach Holm's first threshold, alpha_features / m, twice over.
    feature_permutations = max(
        permutations, math.ceil(2 * len(ref_cols) / (alpha * (1.0 - multivariate_share)))
    )
    raw: dict[str, tuple[float, float, str, dict[str, float]]] = {}
    joint_cur: list[FloatArray] = []
    joint_ref: list[FloatArray] = []
    joint_names: list[str] = []
    joint_scaled: list[bool] = []
    for name in ref_cols:
        if name in ref.numeric:
            r, c = ref.numeric[name], cur.numeric[name]
            if _is_constant_pair(r, c):
                raw[name] = (0.0, 1.0, "constant", {"ks": 0.0, "wasserstein_norm": 0.0, "psi": 0.0})
                continue
            raw[name] = _numeric_feature(r, c, numeric_test, feature_permutations, rng)
            joint_ref.append(r.reshape(-1, 1))
            joint_cur.append(c.reshape(-1, 1))
            joint_names.append(name)
            joint_scaled.append(True)
        else:
            r_s, c_s = ref.categorical[name], cur.categorical[name]
            raw[name] = _categorical_feature(r_s, c_s)
            if raw[name][2] == "constant":
                continue
            categories = np.unique(np.concatenate([r_s, c_s]))
            joint_ref.append(_one_hot(r_s, categories))
            joint_cur.append(_one_hot(c_s, categories))
            joint_names.append(name)
            joint_scaled += [False] * len(categories)

    use_joint = multivariate and len(joint_names) >= 2
    share = multivariate_share if use_joint else 0.0
    feature_alpha = alpha * (1.0 - share)
    names_order = list(raw)
    p_values = [raw[k][1] for k in names_order]
    rejected = holm(p_values, feature_alpha)
    adjusted = holm_adjusted(p_values)
    features = {
        name: FeatureResult(
            statistic=raw[name][0],
            p_value=raw[name][1],
            drift=rejected[i],
            method=raw[name][2],
            adjusted_p_value=adjusted[i],
            effects=raw[name][3],
        )
        for i, name in enumerate(names_order)
    }
    overall = min(1.0, len(p_values) * min(p_values) / (1.0 - share))
    mv: MultivariateResult | None = None
    if use_joint:
        x = np.hstack(joint_ref)
        y = np.hstack(joint_cur)
        if len(x) > max_samples:
            x = x[rng.choice(len(x), max_samples, replace=False)]
        if len(y) > max_samples:
            y = y[rng.choice(len(y), max_samples, replace=False)]
        result = joint_test(
            x,
            y,
            permutations=permutations,
            seed=seed,
            decide_by=joint,
            standardise=np.asarray(joint_scaled, dtype=bool),
        )
        mv = MultivariateResult(
            statistic=result.statistic,
            p_value=result.p_value,
            drift=result.p_value <= alpha * share,
            method=f"{joint}-permutation",
            bandwidth=result.bandwidth,
            permutations=permutations,
            columns=tuple(joint_names),
            components=result.components,
            statistics=result.statistics,
        )
        overall = min(overall, min(1.0, result.p_value / share))
    per_feature = {"ks": "ks", "wasserstein": "wasserstein", "psi": "psi"}[numeric_test]
    method = f"holm({per_feature}+chi2)"
    if use_joint:
        method += f"@{1.0 - share:g}a + {joint}@{share:g}a"
    return DriftReport(
        drift=overall <= alpha,
        p_value=overall,
        method=method,
        alpha=alpha,
        features=features,
        multivariate=mv,
        n_reference=ref.rows,
        n_current=cur.rows,
        dropped_reference=ref.dropped,
        dropped_current=cur.dropped,
    )


# --------------------------------------------------------------------------- streaming


class DriftMonitor:
    """Test each full, non-overlapping window of incoming rows against a fixed reference.

    Every window is tested at ``alpha``: the false-alarm rate is ``alpha`` per window, so over
    ``k`` windows of a stable stream about ``alpha * k`` false alarms are expected. Rows are
    mappings of column name to value, or sequences in the reference's column order.
    """

    def __init__(
        self,
        reference: Mapping[str, Sequence[Any] | npt.NDArray[Any]] | npt.NDArray[Any],
        window: int = 200,
        alpha: float = 0.01,
        *,
        names: Sequence[str] | None = None,
        categorical: Collection[str] = frozenset(),
        seed: int = 0,
        numeric_test: NumericTest = "ks",
        permutations: int = 500,
    ) -> None:
        if window < MIN_SAMPLES:
            raise ValueError(f"window must be >= {MIN_SAMPLES}, got {window}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self._reference = _columns(reference, names, "reference")
        _prepare(self._reference, categorical, "reference")
        self.window = window
        self.alpha = alpha
        self.categorical = frozenset(categorical)
        self.seed = seed
        self.numeric_test: NumericTest = numeric_test
        self.permutations = permutations
        self._reset()

    def _reset(self) -> None:
        """Forget the buffered rows and every window's result."""
        self._rows: list[Sequence[Any]] = []
        self._reports: list[DriftReport] = []
        self._detected = False

    def reset(self) -> None:
        """Forget everything seen so far (the reference stays)."""
        self._reset()

    @property
    def names(self) -> tuple[str, ...]:
        """Column names, in order."""
        return tuple(self._reference)

    def update(self, row: Mapping[str, Any] | Sequence[Any]) -> Self:
        """Add one row; when it completes a window, test that window and start the next."""
        if isinstance(row, Mapping):
            missing = [k for k in self._reference if k not in row]
            if missing:
                raise DriftDataError(f"row lacks columns {missing}")
            values: Sequence[Any] = [row[k] for k in self._reference]
        else:
            values = list(row)
            if len(values) != len(self._reference):
                raise DriftDataError(
                    f"row has {len(values)} values, expected {len(self._reference)}"
                )
        self._rows.append(values)
        self._detected = False
        if len(self._rows) == self.window:
            current = {
                name: np.asarray([r[i] for r in self._rows], dtype=object)
                for i, name in enumerate(self._reference)
            }
            self._rows = []
            report = drift_test(
                self._reference,
                current,
                alpha=self.alpha,
                categorical=self.categorical,
                seed=self.seed + len(self._reports),
                numeric_test=self.numeric_test,
                permutations=self.permutations,
            )
            self._reports.append(report)
            self._detected = report.drift
        return self

    @property
    def drift_detected(self) -> bool:
        """True right after a row completed a window whose test found drift."""
        return self._detected

    @property
    def last_report(self) -> DriftReport | None:
        """The last complete window's report, or None before the first window fills."""
        return self._reports[-1] if self._reports else None

    @property
    def reports(self) -> tuple[DriftReport, ...]:
        """Every complete window's report, oldest first."""
        return tuple(self._reports)

    @property
    def pending(self) -> int:
        """Rows buffered toward the next window."""
        return len(self._rows)
