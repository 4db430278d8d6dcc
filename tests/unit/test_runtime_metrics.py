from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from autoops.runtime.metrics import CONTENT_TYPE, ControllerMetrics

Labels = frozenset[tuple[str, str]]


def _samples(metrics: ControllerMetrics) -> dict[tuple[str, Labels], float]:
    """Every exposed sample, keyed by name and labels, parsed from the text exposition."""
    out: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(metrics: ControllerMetrics, name: str, **labels: str) -> float | None:
    return _samples(metrics).get((name, frozenset(labels.items())))


def _families(metrics: ControllerMetrics) -> set[str]:
    return {f.name for f in text_string_to_metric_families(metrics.render().decode())}


def test_every_family_is_exposed_in_parseable_text_format() -> None:
    m = ControllerMetrics()
    m.tick("checkout")
    m.observe_stage("checkout", "observe", 0.01)
    m.decision("checkout")
    m.action("checkout", "rollback", "updated")
    m.metrics_read("checkout", 1_700_000_000.0)
    m.outage("checkout", False)
    m.paused(False)
    m.audit_head(1, "ab" * 32)
    m.leader("checkout", True)

    assert {
        "autoops_ticks",
        "autoops_stage_duration_seconds",
        "autoops_decisions",
        "autoops_actions",
        "autoops_last_metrics_read_timestamp_seconds",
        "autoops_metrics_outage",
        "autoops_paused",
        "autoops_audit_head_seq",
        "autoops_audit_head_info",
        "autoops_leader",
    } <= _families(m)
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_metrics_live_in_their_own_registry_not_the_global_one() -> None:
    first, second = ControllerMetrics(), ControllerMetrics()  # a shared registry would clash
    first.tick("a")

    assert _value(first, "autoops_ticks_total", policy="a") == 1
    assert _value(second, "autoops_ticks_total", policy="a") is None
    assert first.registry is not REGISTRY
    assert REGISTRY.get_sample_value("autoops_ticks_total", {"policy": "a"}) is None


def test_ticks_and_decisions_count_per_policy() -> None:
    m = ControllerMetrics()
    for _ in range(3):
        m.tick("a")
    m.tick("b")
    m.decision("a")

    assert _value(m, "autoops_ticks_total", policy="a") == 3
    assert _value(m, "autoops_ticks_total", policy="b") == 1
    assert _value(m, "autoops_decisions_total", policy="a") == 1
    assert _value(m, "autoops_decisions_total", policy="b") == 0


def test_actions_count_by_kind_and_outcome_and_start_at_zero() -> None:
    m = ControllerMetrics()
    m.action("p", "set_traffic", "updated")
    m.action("p", "set_traffic", "updated")
    m.action("p", "set_traffic", "unchanged")
    m.action("p", "set_replicas", "failed")

    assert (
        _value(m, "autoops_actions_total", policy="p", action="set_traffic", outcome="updated") == 2
    )
    assert (
        _value(m, "autoops_actions_total", policy="p", action="set_traffic", outcome="unchanged")
        == 1
    )
    assert (
        _value(m, "autoops_actions_total", policy="p", action="set_replicas", outcome="failed") == 1
    )
    # Series a policy has not used yet exist at 0, so rate() and increase() see the first one.
    assert _value(m, "autoops_actions_total", policy="p", action="rollback", outcome="skipped") == 0


def test_stage_durations_are_a_histogram_per_policy_and_stage() -> None:
    m = ControllerMetrics()
    m.observe_stage("p", "observe", 0.002)
    m.observe_stage("p", "observe", 0.2)
    m.observe_stage("p", "act", 3.0)

    assert _value(m, "autoops_stage_duration_seconds_count", policy="p", stage="observe") == 2
    assert _value(
        m, "autoops_stage_duration_seconds_sum", policy="p", stage="observe"
    ) == pytest.approx(0.202)
    assert (
        _value(m, "autoops_stage_duration_seconds_bucket", policy="p", stage="observe", le="0.005")
        == 1
    )
    assert _value(m, "autoops_stage_duration_seconds_count", policy="p", stage="act") == 1


def test_stage_timer_records_the_stage_even_when_it_raises() -> None:
    m = ControllerMetrics()
    with m.stage_timer("p", "decide"):
        pass
    with pytest.raises(RuntimeError), m.stage_timer("p", "decide"):
        raise RuntimeError("boom")

    assert _value(m, "autoops_stage_duration_seconds_count", policy="p", stage="decide") == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda m: m.observe_stage("p", "observ", 0.1), "unknown stage", id="stage"),
        pytest.param(lambda m: m.stage_timer("p", "nap").__enter__(), "unknown stage", id="timer"),
        pytest.param(lambda m: m.action("p", "reboot", "updated"), "unknown action", id="kind"),
        pytest.param(lambda m: m.action("p", "rollback", "done"), "unknown outcome", id="outcome"),
        pytest.param(lambda m: m.tick(""), "policy name", id="empty-policy"),
    ],
)
def test_unknown_label_values_are_refused_with_the_bad_value_named(
    call: Callable[[ControllerMetrics], object], message: str
) -> None:
    m = ControllerMetrics()
    with pytest.raises(ValueError, match=message):
        call(m)


def test_outage_paused_and_leader_gauges_toggle() -> None:
    m = ControllerMetrics()
    m.outage("p", True)
    m.paused(True)
    m.leader("p", True)
    assert _value(m, "autoops_metrics_outage", policy="p") == 1
    assert _value(m, "autoops_paused") == 1
    assert _value(m, "autoops_leader", policy="p") == 1

    m.outage("p", False)
    m.paused(False)
    m.leader("p", False)
    assert _value(m, "autoops_metrics_outage", policy="p") == 0
    assert _value(m, "autoops_paused") == 0
    assert _value(m, "autoops_leader", policy="p") == 0


def test_last_metrics_read_is_the_unix_time_given() -> None:
    m = ControllerMetrics()
    m.metrics_read("p", 1_700_000_123.5)

    assert _value(m, "autoops_last_metrics_read_timestamp_seconds", policy="p") == 1_700_000_123.5


def test_audit_head_publishes_the_newest_seq_and_hash_only() -> None:
    m = ControllerMetrics()
    m.audit_head(7, "a" * 64)
    m.audit_head(8, "b" * 64)

    assert _value(m, "autoops_audit_head_seq") == 8
    heads = [k for k in _samples(m) if k[0] == "autoops_audit_head_info"]
    assert heads == [("autoops_audit_head_info", frozenset({("hash", "b" * 64), ("seq", "8")}))]


def test_render_for_openmetrics_accept_header_answers_openmetrics() -> None:
    m = ControllerMetrics()
    m.tick("p")

    body, content_type = m.render_for("application/openmetrics-text; version=1.0.0")
    plain, plain_type = m.render_for(None)

    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    assert plain_type == CONTENT_TYPE
    assert plain == m.render()
