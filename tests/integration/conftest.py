"""Fixtures of the integration tests: one real local serving stack per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serve_apps.app import StackSpec
from serve_apps.ingress import IngressSettings
from tests.integration.serve_stack import ServeStack, serve_stack

SMALL, STABLE, CANDIDATE = "small-v1", "v1", "v2"
WEST, CENTRAL = "eu-west", "eu-central"

TEST_DEPLOYMENTS = {SMALL: [WEST], STABLE: [WEST, CENTRAL], CANDIDATE: [WEST]}
"""Kept small for 2 busy cores: 4 model replicas and the ingress."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeStack]:
    """A running stack (Ray, Serve, the ingress and TEST_DEPLOYMENTS) shared by one module."""
    spec = StackSpec(
        deployments=TEST_DEPLOYMENTS,
        access_log=False,
        settings=IngressSettings(call_timeout_s=30.0, seed=7),
    )
    with serve_stack(spec, tmp_path_factory.mktemp("serve-stack")) as running:
        yield running
