"""Say in plain words what the controller will do under a policy (``autoops policy explain``)."""

from __future__ import annotations

from collections.abc import Iterable

from autoops.policy.schema import Objective, Policy, Signal, Strategy
from autoops.regions.model import RegionCatalogue

_SIGNAL_WORDS = {
    Signal.REQUEST_RATE: "request rate",
    Signal.ERROR_RATIO: "error ratio",
    Signal.LATENCY_P99: "p99 latency",
    Signal.LATENCY_P50: "p50 latency",
    Signal.ACCURACY: "accuracy",
    Signal.ONGOING: "requests in flight",
    Signal.GPU_UTILISATION: "GPU utilisation",
}

_APPROVAL_WORDS = {
    "promote": "promoting a new version",
    "rollback": "rolling back",
    "set_replicas": "changing replica counts",
    "set_region_weights": "changing region weights",
    "retrain": "retraining",
}

_OBJECTIVE_WORDS = {
    Objective.COST: "the lowest cost ($ per replica-hour)",
    Objective.CARBON: "the lowest grid carbon intensity (gCO2e/kWh) at that hour",
    Objective.LATENCY: "the lowest latency to users",
}


def _num(value: float) -> str:
    """A number without trailing zeros: 2.0 -> '2', 0.25 -> '0.25'."""
    return f"{value:,.6g}" if abs(value) >= 1000 else f"{value:.6g}"


def _pct(ratio: float) -> str:
    """A ratio as a percentage: 0.005 -> '0.5%', 0.999 -> '99.9%'."""
    return f"{ratio * 100:.6g}%"


def _duration(seconds: float) -> str:
    """Seconds in the unit that reads best: 43.2 min -> '43 minutes', 3600 -> '1 hour'."""

    def unit(value: float, name: str) -> str:
        text = f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"
        return f"{text} {name}" + ("" if text == "1" else "s")

    if seconds < 120:
        return f"{_num(round(seconds, 1))} s"
    if seconds < 2 * 3600 and seconds % 3600:
        return unit(seconds / 60, "minute")
    if seconds < 48 * 3600:
        return unit(seconds / 3600, "hour")
    return unit(seconds / 86400, "day")


def _points(ratio: float) -> str:
    """An absolute difference of ratios: 0.002 -> '0.2 percentage points'."""
    return f"{ratio * 100:.6g} percentage point" + ("" if ratio == 0.01 else "s")


def _join(items: Iterable[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = list(items)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _section(title: str, lines: Iterable[str]) -> list[str]:
    body = [f"  - {line}" for line in lines if line]
    return [f"{title}:", *body, ""] if body else []


def _target(policy: Policy) -> list[str]:
    t = policy.target
    stable = f", starting from stable version {t.stable_version}" if t.stable_version else ""
    head = [
        f"Policy '{policy.metadata.name}'"
        + (f" (owner: {policy.metadata.owner})" if policy.metadata.owner else ""),
        f"Controls deployment '{t.deployment}' of Ray Serve application '{t.application}'"
        f"{stable}, deciding every {_num(policy.tick_interval_s)} s.",
    ]
    if policy.metadata.description:
        head.append(policy.metadata.description.strip())
    if policy.guardrails.dry_run:
        head.append(
            "DRY RUN: every decision is made and written to the audit log with its evidence, "
            "but nothing is applied to the serving system."
        )
    return [*head, ""]


def _slo(policy: Policy) -> list[str]:
    s = policy.slo
    budget = 1 - s.availability
    minutes = budget * s.window_days * 24 * 3600
    return _section(
        "Service level objectives",
        [
            f"p99 end-to-end latency at most {_num(s.latency_p99_ms)} ms.",
            f"At most {_pct(s.error_rate)} of requests fail.",
            f"Availability {_pct(s.availability)} over {s.window_days} days: an error budget of "
            f"{_pct(budget)} of requests, about {_duration(minutes)} of full outage per "
            f"{s.window_days} days. Burn rates are measured against this budget "
            "(burn rate 1 spends exactly the budget over the window).",
        ],
    )


def _regions(policy: Policy, catalogue: RegionCatalogue) -> list[str]:
    i = policy.intent
    described: list[str] = []
    for name in i.allowed_regions:
        if name in catalogue:
            r = catalogue[name]
            described.append(
                f"{name} ({r.cloud} {r.cloud_region}, grid {r.carbon_zone}, "
                f"${_num(r.replica_usd_per_hour)}/h per replica)"
            )
        else:
            described.append(f"{name} (not in the region catalogue)")
    group = f"user group '{i.user_group}'" if i.user_group else "all user groups on average"
    if i.objective is Objective.WEIGHTED:
        w = i.weights
        objective = (
            f"the best weighted score of cost x{_num(w.cost)}, carbon x{_num(w.carbon)} "
            f"and latency x{_num(w.latency)}"
        )
    else:
        objective = _OBJECTIVE_WORDS[i.objective]
    lines = [
        "Serves traffic and runs replicas only in: " + _join(described) + ". Never anywhere else.",
        f"Among those that meet the SLO, prefers {objective}; latency is that of {group}.",
    ]
    if i.min_regions > 1:
        lines.append(f"Spreads traffic over at least {i.min_regions} regions.")
    if i.budget_usd_per_hour is not None:
        lines.append(
            f"Compute budget ceiling ${_num(i.budget_usd_per_hour)}/h: exceeded only when the "
            "SLO would otherwise break, and the decision says so."
        )
    if i.carbon_ceiling_g_per_kwh is not None:
        lines.append(
            f"Avoids regions above {_num(i.carbon_ceiling_g_per_kwh)} gCO2e/kWh while another "
            "allowed region is under that."
        )
    if i.accuracy_floor is not None:
        lines.append(f"Never trades accuracy below {_pct(i.accuracy_floor)} for cost or load.")
    return _section("Regions and intent", lines)


def _scaling(policy: Policy, catalogue: RegionCatalogue) -> list[str]:
    s = policy.scaling
    lines = [
        f"Keeps between {s.min_replicas} and {s.max_replicas} replicas, aiming at "
        f"{_num(s.target_ongoing_requests)} requests in flight per replica "
        f"(no change while within {_pct(s.tolerance)} of that).",
        f"Scales up once load has stayed above that band for "
        f"{_duration(s.upscale_stabilization_s)}, down once it has stayed below for "
        f"{_duration(s.downscale_stabilization_s)}"
        + (
            f"; at most {s.max_step} replica{'s' if s.max_step != 1 else ''} per decision."
            if s.max_step
            else "."
        ),
        "Never scales down or promotes on missing metrics.",
    ]
    prices = [
        catalogue[n].replica_usd_per_hour for n in policy.intent.allowed_regions if n in catalogue
    ]
    if prices:
        low, high = min(prices) * s.max_replicas, max(prices) * s.max_replicas
        span = (
            f"${_num(round(low, 2))}/h"
            if low == high
            else (f"${_num(round(low, 2))}-{_num(round(high, 2))}/h")
        )
        lines.append(f"At {s.max_replicas} replicas that costs {span} in the allowed regions.")
    p = s.predictive
    if p.enabled:
        lines.append(
            f"Predictive: forecasts the request rate {_duration(p.horizon_s)} ahead from the "
            f"last {p.history_points} points and adds replicas before a forecast ramp."
        )
    else:
        lines.append("Reactive only: no forecast-based scale-up.")
    return _section("Scaling", lines)


def _rollout(policy: Policy) -> list[str]:
    r = policy.rollout
    approve = "promote" in policy.guardrails.require_approval
    promote = "promoted to stable" + (" once a human approves" if approve else "")
    steps = " -> ".join(f"{_num(step)}%" for step in r.steps)
    if r.strategy is Strategy.CANARY:
        lines = [f"A new version gets {steps} of traffic, then is {promote}."]
    elif r.strategy is Strategy.BLUE_GREEN:
        lines = [
            f"Blue-green: the new version gets {_num(r.steps[-1])}% of traffic at once, "
            f"then is {promote}."
        ]
    else:
        lines = [
            "Shadow: the new version receives a copy of live traffic but its answers are not "
            f"served; it is {promote} when it disagrees with the stable version on at most "
            f"{_pct(r.max_shadow_disagreement)} of requests."
        ]
    lines.append(
        f"Each step must pass analysis for {_duration(r.analysis_interval_s)} with at least "
        f"{r.min_requests} canary requests; fewer requests is inconclusive, never a pass."
    )
    checks = [
        f"its p99 latency is more than {_pct(r.max_latency_increase)} above the stable version's",
        f"its error ratio is more than {_points(r.max_error_increase)} above it",
        f"its accuracy is more than {_points(r.max_accuracy_drop)} below it",
    ]
    for gate in r.burn_rate_gates:
        checks.append(
            f"it burns the error budget faster than {_num(gate.max_burn_rate)}x over both "
            f"{_duration(gate.long_window_s)} and {_duration(gate.short_window_s)}"
        )
    lines.append("An analysis interval fails when " + "; or ".join(checks) + ".")
    action = {
        "rollback": "rolls the new version back (all traffic to stable)",
        "pause": "pauses the rollout where it is",
        "alert": "raises an alert and leaves traffic as it is",
    }[policy.remediations.on_canary_failure]
    if "rollback" in policy.guardrails.require_approval and action.startswith("rolls"):
        action += " once a human approves"
    lines.append(f"After {r.failed_check_limit} failed intervals it {action}.")
    if r.fast_rollback_burn_rate is not None:
        lines.append(
            f"It rolls back at once, without counting failures, when the canary burns its error "
            f"budget {_num(r.fast_rollback_burn_rate)}x too fast in the shortest window while "
            "the stable version does not."
        )
    lines.append(
        f"A step that makes no progress for {_duration(r.progress_deadline_s)} "
        "(inconclusive data) is rolled back."
    )
    return _section(f"Rollout ({r.strategy.value})", lines)


def _detectors(policy: Policy) -> list[str]:
    d = policy.detectors
    lines = []
    for spec in d.anomaly:
        threshold = f", alarm score {_num(spec.threshold)}" if spec.threshold else ""
        lines.append(
            f"Anomaly detector on {_SIGNAL_WORDS[spec.signal]} ({spec.detector}{threshold})."
        )
    if d.drift.enabled:
        lines.append(
            f"Drift test ({d.drift.method}) on model inputs and outputs against the version's "
            f"reference sample, every {d.drift.window} samples, false-alarm rate "
            f"{_pct(d.drift.alpha)}."
        )
    else:
        lines.append("No drift tests.")
    judge = "anytime-valid sequential test" if d.canary.sequential else "fixed-sample test"
    lines.append(
        "Canary judge compares "
        + _join(_SIGNAL_WORDS[m] for m in d.canary.metrics)
        + f" with the stable version ({judge}, {_pct(d.canary.confidence)} confidence)."
    )
    return _section("Detectors", lines)


def _remediations(policy: Policy) -> list[str]:
    m = policy.remediations
    anomaly = {
        "alert": "raises an alert",
        "scale_out": "adds replicas (within the scaling bounds)",
        "ignore": "does nothing",
    }[m.on_anomaly]
    drift = {
        "retrain": "asks for retraining, deferred up to "
        f"{_duration(m.retrain_deadline_s)} (e.g. to a greener hour)",
        "fallback": f"sends traffic to the fallback version {m.fallback_version}",
        "alert": "raises an alert",
    }[m.on_drift]
    region = {
        "reroute": "moves its traffic to the other allowed regions",
        "alert": "raises an alert",
    }[m.on_region_degraded]
    outage = {
        "hold": "holds: changes nothing until metrics return",
        "fallback_to_stable": "sends all traffic to the stable version",
    }[m.on_metrics_outage]
    return _section(
        "Remediations",
        [
            f"On a fleet-wide anomaly it {anomaly}.",
            f"On input/output drift it {drift}.",
            f"When a region fails or degrades it {region}.",
            f"When metrics are missing or older than {_duration(m.metrics_stale_after_s)} it "
            f"{outage}, and says why.",
        ],
    )


def _degradation(policy: Policy) -> list[str]:
    g = policy.degradation
    if not g.enabled:
        return _section("Degradation", ["No degradation: the small model is not used for load."])
    floor = policy.intent.accuracy_floor
    return _section(
        "Degradation",
        [
            f"Under pressure it lowers the cascade threshold from {_num(g.normal_threshold)} by "
            f"{_num(g.step)} per decision, down to {_num(g.min_threshold)}, so more requests are "
            "answered by the small model"
            + (f", but never below {_pct(floor)} accuracy." if floor is not None else ".")
        ],
    )


def _guardrails(policy: Policy) -> list[str]:
    g = policy.guardrails
    lines = [
        f"At most {g.max_actions_per_hour} changes to the serving system per hour.",
        f"At most {_num(g.max_traffic_shift)} percentage points of traffic move toward a new "
        "version or region per decision (rollbacks move back to safety at once).",
        f"Region weights change only for a {_pct(g.region_hysteresis)} better objective.",
        f"No scaling change within {_duration(g.scale_cooldown_s)} of the previous one.",
    ]
    if g.require_approval:
        words = _join(_APPROVAL_WORDS[action] for action in g.require_approval)
        lines.append(f"Waits for a human's approval before {words}.")
    lines.append(
        "Dry run: decides and audits but applies nothing."
        if g.dry_run
        else "Applies its decisions (not a dry run); every one is written to the audit log."
    )
    return _section("Guardrails (applied after every decision)", lines)


def explain(policy: Policy, catalogue: RegionCatalogue) -> str:
    """Plain-English account of what the controller will do under ``policy``."""
    parts = [
        *_target(policy),
        *_slo(policy),
        *_regions(policy, catalogue),
        *_scaling(policy, catalogue),
        *_rollout(policy),
        *_detectors(policy),
        *_remediations(policy),
        *_degradation(policy),
        *_guardrails(policy),
    ]
    return "\n".join(parts).rstrip() + "\n"
