"""The serving plane on a real local Ray Serve: routing, shadow, cascade, breaker, faults, access.

One stack per module (see conftest.py). Each test deploys the routing table it needs through the
ingress's user_config, as the controller does, and reads what happened from the answers and from
Ray's metrics export port. Metric checks use deltas, so the tests do not depend on one another,
except where a comment says so.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest
from ray import serve

from autoops.contract import (
    BREAKER_OPEN,
    CASCADE,
    DEGRADED,
    FEEDBACK,
    INPUT_SIZE,
    LATENCY_MS,
    MAX_BATCH_ROWS,
    PREDICT_ROUTE,
    REQUESTS,
    SAMPLES_ROUTE,
    SHADOW,
    VERSION_HEADER,
    RoutingTable,
    exported_name,
    version_app_name,
    version_deployment_name,
)
from serve_apps.loadgen import LoadConfig, LoadReport, run_load_sync
from serve_apps.models import predict_proba
from serve_apps.registry import ModelRegistry
from tests.integration.conftest import (
    CANDIDATE,
    CENTRAL,
    SMALL,
    STABLE,
    TEST_DEPLOYMENTS,
    WEST,
)
from tests.integration.serve_stack import ServeStack, wait_for

pytestmark = pytest.mark.integration

REQUESTS_TOTAL = exported_name(REQUESTS, "_total")
LATENCY_COUNT = exported_name(LATENCY_MS, "_count")
LATENCY_BUCKET = exported_name(LATENCY_MS, "_bucket")
SHADOW_TOTAL = exported_name(SHADOW, "_total")
CASCADE_TOTAL = exported_name(CASCADE, "_total")
FEEDBACK_TOTAL = exported_name(FEEDBACK, "_total")
DEGRADED_TOTAL = exported_name(DEGRADED, "_total")
BREAKER_GAUGE = exported_name(BREAKER_OPEN)
APP = "digits"


def table(**changes: Any) -> RoutingTable:
    """The tests' base routing table (all to v1, breaker off, no faults) with ``changes``."""
    data: dict[str, Any] = {
        "model": APP,
        "stable_version": STABLE,
        "weights": {STABLE: 1.0},
        "region_weights": {WEST: 1.0, CENTRAL: 1.0},
        "deployments": {v: sorted(r) for v, r in TEST_DEPLOYMENTS.items()},
        "cascade": {"enabled": False, "small_version": SMALL},
        "breaker": {"enabled": False},
    }
    data.update(changes)
    return RoutingTable.model_validate(data)


def load(stack: ServeStack, requests: int, **options: Any) -> LoadReport:
    """A bounded run of the load generator against the stack, keeping every exchange."""
    config = LoadConfig(
        url=stack.http_url,
        requests=requests,
        max_seconds=150.0,
        token=stack.inference_token,
        **options,
    )
    return run_load_sync(config, keep_exchanges=True)


def within(observed: float, expected: float, n: int, sigmas: float = 4.5) -> bool:
    """Whether a binomial share is within ``sigmas`` standard errors of ``expected``."""
    return abs(observed - expected) <= sigmas * math.sqrt(expected * (1 - expected) / n)


def local_proba(stack: ServeStack, version: str, rows: np.ndarray) -> np.ndarray:
    """Class probabilities of ``version`` computed here, from the stack's registry."""
    model = ModelRegistry(stack.registry_root).load(version)
    return predict_proba(model, rows)


# ---------------------------------------------------------------------- breaker (keep first)


def test_breaker_opens_within_a_few_failures_and_clients_get_the_stable_answers(
    stack: ServeStack,
) -> None:
    # First in the module on purpose: v2's breaker has seen no traffic yet, so its error window
    # holds only this test's requests (the window outlives routing changes).
    min_requests = 3
    stack.set_routing(
        table(
            weights={STABLE: 0.5, CANDIDATE: 0.5},
            breaker={
                "enabled": True,
                "window_s": 60,
                "min_requests": min_requests,
                "error_ratio": 0.5,
                "open_s": 600,
            },
            faults={CANDIDATE: {"error_rate": 1.0}},
        )
    )
    before = stack.scrape()
    report = load(stack, 40, concurrency=1)

    assert report.ok == 40, report.summary()
    assert set(report.versions) == {STABLE}
    fallbacks = sum(1 for e in report.exchanges if e.response.path == "breaker_fallback")
    assert fallbacks == min_requests
    stack.wait_metric(BREAKER_GAUGE, 1, version=CANDIDATE)
    base_ok = before.total(REQUESTS_TOTAL, version=STABLE, outcome="ok")
    stack.wait_metric(REQUESTS_TOTAL, base_ok + 40, version=STABLE, outcome="ok")
    errors = stack.scrape().total(REQUESTS_TOTAL, version=CANDIDATE, outcome="error")
    assert errors - before.total(REQUESTS_TOTAL, version=CANDIDATE, outcome="error") == min_requests


# ---------------------------------------------------------------------- routing


def test_weights_split_traffic_and_a_user_config_change_moves_it_on_the_same_replicas(
    stack: ServeStack,
) -> None:
    stack.set_routing(table(weights={STABLE: 0.9, CANDIDATE: 0.1}))
    replicas_before = {
        name: stack.replica_actor_ids(app, name)
        for app, name in [
            (APP, "Ingress"),
            (version_app_name(APP, STABLE), version_deployment_name(APP, STABLE, WEST)),
            (version_app_name(APP, CANDIDATE), version_deployment_name(APP, CANDIDATE, WEST)),
        ]
    }
    n = 400
    first = load(stack, n, concurrency=8)
    assert first.ok == n, first.summary()
    assert within(first.share(CANDIDATE), 0.1, n), first.summary()
    v1_regions = Counter(e.response.region for e in first.exchanges if e.response.version == STABLE)
    v1_total = sum(v1_regions.values())
    assert within(v1_regions[CENTRAL] / v1_total, 0.5, v1_total), v1_regions

    stack.set_routing(table(weights={STABLE: 0.5, CANDIDATE: 0.5}))
    second = load(stack, n, concurrency=8)
    assert second.ok == n, second.summary()
    assert within(second.share(CANDIDATE), 0.5, n), second.summary()

    replicas_after = {
        name: stack.replica_actor_ids(app, name)
        for app, name in [
            (APP, "Ingress"),
            (version_app_name(APP, STABLE), version_deployment_name(APP, STABLE, WEST)),
            (version_app_name(APP, CANDIDATE), version_deployment_name(APP, CANDIDATE, WEST)),
        ]
    }
    assert replicas_after == replicas_before
    assert all(replicas_before.values())


def test_header_override_wins_over_weights(stack: ServeStack) -> None:
    stack.set_routing(table())
    report = load(stack, 20, concurrency=4, header_version=CANDIDATE)
    assert report.ok == 20
    assert {e.response.version for e in report.exchanges} == {CANDIDATE}
    assert {e.response.path for e in report.exchanges} == {"header"}


def test_an_unknown_version_in_the_header_gets_422_naming_the_header(stack: ServeStack) -> None:
    stack.set_routing(table())
    response = stack.post(
        PREDICT_ROUTE, {"inputs": [[0.0] * INPUT_SIZE]}, headers={VERSION_HEADER: "v9"}
    )
    assert response.status_code == 422
    assert response.json()["field"] == VERSION_HEADER


def test_an_invalid_routing_table_is_refused_and_the_old_one_stays_in_force(
    stack: ServeStack,
) -> None:
    stack.set_routing(table(weights={CANDIDATE: 1.0}))
    ingress_before = stack.ingress_actor_ids()
    config = copy.deepcopy(stack.config)
    ingress = next(a for a in config["applications"] if a["name"] == APP)
    ingress["deployments"][0]["user_config"]["weights"] = {"v9": 1.0}  # no such deployment
    stack.deploy(config)

    health = wait_for(
        lambda: (h := stack.get("/healthz").json())["refused_routing"] and h,
        60,
        "the ingress to refuse the table",
    )
    assert "weights[v9]" in health["refused_routing"]
    report = load(stack, 10, concurrency=2)
    assert report.ok == 10
    assert set(report.versions) == {CANDIDATE}
    assert stack.ingress_actor_ids() == ingress_before


# ---------------------------------------------------------------------- shadow and cascade


def test_shadow_never_changes_the_answer_and_disagreement_rises_with_wrong_answers(
    stack: ServeStack,
) -> None:
    def run(faults: dict[str, Any]) -> float:
        stack.set_routing(table(shadow={"version": CANDIDATE, "fraction": 1.0}, faults=faults))
        before = stack.scrape()
        report = load(stack, n, concurrency=4)
        assert report.ok == n
        assert set(report.versions) == {STABLE}
        rows = np.concatenate([e.inputs for e in report.exchanges])
        proba = local_proba(stack, STABLE, rows)
        top2 = np.sort(proba, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-3  # skip near-ties, where float noise may flip
        answered = np.array([e.response.predictions[0] for e in report.exchanges])
        assert (answered[clear] == proba.argmax(axis=1)[clear]).all()
        shadowed = before.total(SHADOW_TOTAL, version=CANDIDATE)
        stack.wait_metric(SHADOW_TOTAL, shadowed + n, version=CANDIDATE)
        after = stack.scrape()
        disagreed = after.total(SHADOW_TOTAL, version=CANDIDATE, agreed="false") - before.total(
            SHADOW_TOTAL, version=CANDIDATE, agreed="false"
        )
        assert after.total(SHADOW_TOTAL, version=CANDIDATE) - shadowed == n
        return disagreed / n

    n = 60
    healthy = run({})
    wrong = run({CANDIDATE: {"wrong_answer_rate": 1.0}})
    assert healthy <= 0.2
    assert wrong >= 0.9


def test_cascade_escalates_exactly_when_the_small_confidence_is_under_the_threshold(
    stack: ServeStack,
) -> None:
    threshold = 0.9
    stack.set_routing(
        table(cascade={"enabled": True, "small_version": SMALL, "threshold": threshold})
    )
    before = stack.scrape()
    n = 80
    report = load(stack, n, concurrency=4)
    assert report.ok == n
    rows = np.concatenate([e.inputs for e in report.exchanges])
    small_confidence = local_proba(stack, SMALL, rows).max(axis=1)
    checked = Counter[str]()
    for exchange, confidence in zip(report.exchanges, small_confidence, strict=True):
        if abs(confidence - threshold) < 1e-3:
            continue  # float noise between batch shapes could flip a row this close
        expected = (
            ("cascade_escalated", STABLE) if confidence < threshold else ("cascade_small", SMALL)
        )
        assert (exchange.response.path, exchange.response.version) == expected
        checked[expected[0]] += 1
    assert checked["cascade_escalated"] > 0
    assert checked["cascade_small"] > 0
    escalated = sum(1 for e in report.exchanges if e.response.path == "cascade_escalated")
    base = before.total(CASCADE_TOTAL, version=SMALL)
    stack.wait_metric(CASCADE_TOTAL, base + n, version=SMALL)
    after = stack.scrape()
    assert after.total(CASCADE_TOTAL, version=SMALL) - base == n
    assert (
        after.total(CASCADE_TOTAL, version=SMALL, escalated="true")
        - before.total(CASCADE_TOTAL, version=SMALL, escalated="true")
        == escalated
    )


def test_overload_degrades_to_the_small_model_instead_of_failing(stack: ServeStack) -> None:
    stack.set_routing(
        table(overload={"max_in_flight": 2}, faults={STABLE: {"extra_latency_ms": 300}})
    )
    before = stack.scrape().total(DEGRADED_TOTAL)
    report = load(stack, 24, concurrency=8)
    assert report.ok == 24, report.summary()
    degraded = [e for e in report.exchanges if e.response.path == "degraded"]
    assert degraded
    assert {e.response.version for e in degraded} == {SMALL}
    assert any(e.response.version == STABLE for e in report.exchanges)
    stack.wait_metric(DEGRADED_TOTAL, before + len(degraded))
    assert stack.scrape().total(DEGRADED_TOTAL) - before == len(degraded)


# ---------------------------------------------------------------------- injected faults


def test_injected_latency_shows_in_the_latency_histogram(stack: ServeStack) -> None:
    stack.set_routing(table(faults={CANDIDATE: {"extra_latency_ms": 250}}))
    before = stack.scrape()
    n = 10
    report = load(stack, n, concurrency=5, header_version=CANDIDATE)
    assert report.ok == n
    base_count = before.total(LATENCY_COUNT, version=CANDIDATE)
    stack.wait_metric(LATENCY_COUNT, base_count + n, version=CANDIDATE)
    after = stack.scrape()
    fast = after.total(LATENCY_BUCKET, version=CANDIDATE, le="200.0") - before.total(
        LATENCY_BUCKET, version=CANDIDATE, le="200.0"
    )
    assert after.total(LATENCY_COUNT, version=CANDIDATE) - base_count == n
    assert fast == 0
    assert min(report.latencies_ms) >= 250


def test_injected_errors_show_in_the_error_counter_and_clients_get_the_stable_answer(
    stack: ServeStack,
) -> None:
    stack.set_routing(table(faults={CANDIDATE: {"error_rate": 0.5}}))
    before = stack.scrape()
    n = 40
    report = load(stack, n, concurrency=2, header_version=CANDIDATE)
    assert report.ok == n
    fallbacks = [e for e in report.exchanges if e.response.path == "breaker_fallback"]
    assert {e.response.version for e in fallbacks} <= {STABLE}
    assert 0 < len(fallbacks) < n

    def delta(outcome: str) -> float:
        return stack.scrape().total(
            REQUESTS_TOTAL, version=CANDIDATE, outcome=outcome
        ) - before.total(REQUESTS_TOTAL, version=CANDIDATE, outcome=outcome)

    wait_for(lambda: delta("ok") + delta("error") >= n, 45, "the candidate's calls in metrics")
    assert delta("error") == len(fallbacks)
    assert delta("ok") == n - len(fallbacks)


def test_wrong_answers_stay_fast_and_ok_and_feedback_accuracy_matches_the_truth(
    stack: ServeStack,
) -> None:
    stack.set_routing(
        table(
            weights={STABLE: 0.5, CANDIDATE: 0.5},
            faults={CANDIDATE: {"wrong_answer_rate": 1.0}},
        )
    )
    before = stack.scrape()
    n = 100
    report = load(stack, n, concurrency=4, feedback_fraction=1.0)
    assert report.ok == n
    assert report.statuses == {200: n}
    assert report.feedback_failed == 0
    for version in (STABLE, CANDIDATE):
        tally = report.versions[version]
        base = before.total(FEEDBACK_TOTAL, version=version)
        stack.wait_metric(FEEDBACK_TOTAL, base + tally.rows, version=version)
        after = stack.scrape()
        right = after.total(FEEDBACK_TOTAL, version=version, correct="true") - before.total(
            FEEDBACK_TOTAL, version=version, correct="true"
        )
        assert after.total(FEEDBACK_TOTAL, version=version) - base == tally.rows
        assert right == tally.correct
    stable_accuracy, candidate_accuracy = report.accuracy(STABLE), report.accuracy(CANDIDATE)
    assert stable_accuracy is not None and stable_accuracy >= 0.85
    assert candidate_accuracy is not None and candidate_accuracy <= 0.2


def test_a_crash_fault_kills_the_replica_and_serve_replaces_it(stack: ServeStack) -> None:
    app, deployment = (
        version_app_name(APP, CANDIDATE),
        version_deployment_name(APP, CANDIDATE, WEST),
    )
    original = stack.replica_actor_ids(app, deployment)
    stack.set_routing(table(faults={CANDIDATE: {"crash_after_requests": 2}}))
    before = stack.scrape().total(REQUESTS_TOTAL, version=CANDIDATE, outcome="error")
    statuses: Counter[int] = Counter()

    def replaced() -> bool:
        report = load(stack, 1, header_version=CANDIDATE)
        statuses.update(report.statuses)
        current = stack.replica_actor_ids(app, deployment)
        return bool(current) and current != original

    wait_for(replaced, 120, "Serve to replace the crashed replica", interval_s=0.5)
    assert set(statuses) == {200}  # the crashed request was answered by the stable version
    stack.wait_metric(REQUESTS_TOTAL, before + 1, version=CANDIDATE, outcome="error")
    stack.set_routing(table())
    recovered = wait_for(
        lambda: load(stack, 1, header_version=CANDIDATE).versions.get(CANDIDATE),
        120,
        "the candidate to answer again",
        interval_s=1.0,
    )
    assert recovered.answered == 1


# ---------------------------------------------------------------------- input checks and access


def _rows(n: int) -> list[list[float]]:
    return [[1.0] * INPUT_SIZE for _ in range(n)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b"{not json", "body", id="not-json"),
        pytest.param(b'{"rows": []}', "inputs", id="missing-inputs"),
        pytest.param(json.dumps({"inputs": [[1.0] * 63]}).encode(), "inputs[0]", id="short-row"),
        pytest.param(
            b'{"inputs": [[' + b"1, " * 3 + b"NaN" + b", 1" * 60 + b"]]}",
            "inputs[0][3]",
            id="nan-literal",
        ),
        pytest.param(
            json.dumps({"inputs": [[1.0] * 5 + ["x"] + [1.0] * 58]}).encode(),
            "inputs[0][5]",
            id="string-value",
        ),
        pytest.param(
            json.dumps({"inputs": _rows(MAX_BATCH_ROWS + 1)}).encode(), "inputs", id="too-many"
        ),
    ],
)
def test_a_bad_request_gets_422_naming_the_field(
    stack: ServeStack, body: bytes, field: str
) -> None:
    response = stack.post(PREDICT_ROUTE, body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert field in response.json()["detail"]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        pytest.param(None, 401, id="missing"),
        pytest.param("Bearer wrong-token", 401, id="wrong"),
        pytest.param("right", 200, id="right"),
    ],
)
def test_the_inference_route_needs_the_bearer_token(
    stack: ServeStack, authorization: str | None, status: int
) -> None:
    headers = {}
    if authorization == "right":
        headers = stack.auth()
    elif authorization is not None:
        headers = {"authorization": authorization}
    response = httpx.post(
        stack.http_url + PREDICT_ROUTE,
        json={"inputs": _rows(1)},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == status


def test_admin_routes_need_the_admin_token_not_the_inference_token(stack: ServeStack) -> None:
    with_inference = httpx.get(
        stack.http_url + SAMPLES_ROUTE, params={"version": STABLE}, headers=stack.auth()
    )
    assert with_inference.status_code == 401
    assert stack.get(SAMPLES_ROUTE, admin=True, version=STABLE).status_code == 200


def test_samples_route_serves_the_recent_raw_inputs_and_the_shift_moves_them(
    stack: ServeStack,
) -> None:
    stack.set_routing(table())

    def sent_and_kept(shift: float) -> np.ndarray:
        n = 30
        report = load(stack, n, concurrency=1, input_shift=shift, header_version=CANDIDATE)
        assert report.ok == n
        kept = stack.get(SAMPLES_ROUTE, admin=True, version=CANDIDATE, limit=n).json()
        sent = np.concatenate([e.inputs for e in report.exchanges])
        assert np.array_equal(np.array([s["inputs"] for s in kept]), sent)
        assert [s["prediction"] for s in kept] == [
            e.response.predictions[0] for e in report.exchanges
        ]
        return sent

    plain, shifted = sent_and_kept(0.0), sent_and_kept(2.0)
    assert shifted.mean() > plain.mean() + 1.0


# ---------------------------------------------------------------------- supply chain and scaling


def test_a_tampered_artifact_is_refused_naming_the_version(
    stack: ServeStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tampered_root = tmp_path_factory.mktemp("tampered") / "registry"
    shutil.copytree(stack.registry_root, tampered_root)
    with (tampered_root / "versions" / CANDIDATE / "model.pt").open("ab") as artifact:
        artifact.write(b"\0")
    original = copy.deepcopy(stack.config)
    config = copy.deepcopy(original)
    config["applications"].append(
        {
            "name": "tampered",
            "route_prefix": None,
            "import_path": "serve_apps.app:build_version_app",
            "args": {
                "registry_root": str(tampered_root),
                "version": CANDIDATE,
                "regions": [WEST],
            },
        }
    )
    stack.deploy(config, wait=False)
    try:

        def refusal() -> str | None:
            status = serve.status().applications.get("tampered")
            if status is None:
                return None
            messages = [status.message] + [d.message for d in status.deployments.values()]
            return next((m for m in messages if "refused to start" in m), None)

        message = wait_for(refusal, 120, "the tampered version's replica to refuse to start")
        assert f"'{CANDIDATE}'" in message
        assert "sha256" in message
    finally:
        stack.deploy(original, wait=False)
        wait_for(
            lambda: "tampered" not in serve.status().applications,
            120,
            "the tampered application to go",
        )


def test_scaling_is_handed_to_an_outside_controller(stack: ServeStack) -> None:
    from ray._private.authentication.http_token_authentication import (
        get_auth_headers_if_auth_enabled,
    )

    app = version_app_name(APP, STABLE)
    deployment = version_deployment_name(APP, STABLE, CENTRAL)
    details = stack.details()["applications"]
    assert details[app]["external_scaler_enabled"] is True
    url = f"{stack.dashboard_url}/api/v1/applications/{app}/deployments/{deployment}/scale"
    headers = dict(get_auth_headers_if_auth_enabled({}))

    def target() -> int:
        deployments = stack.details()["applications"][app]["deployments"]
        return int(deployments[deployment]["target_num_replicas"])

    try:
        response = httpx.post(url, json={"target_num_replicas": 2}, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        wait_for(lambda: target() == 2, 60, "Serve to take the outside scaler's target")
    finally:
        httpx.post(url, json={"target_num_replicas": 1}, headers=headers, timeout=30)
        wait_for(lambda: target() == 1, 60, "the deployment to scale back")
