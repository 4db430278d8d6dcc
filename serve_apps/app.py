"""The serving stack's application builders and its one declarative config.

One Serve application per model version (``version_app_name(app, version)``, one deployment per
region, not exposed over HTTP) and the ingress application (``app``, routes at ``/``), whose
``user_config`` is the routing table. Adding or retiring a version never touches the ingress's
code, so routing changes stay ``reconfigure`` calls on the same replica.

``serve deploy serve_apps/config.yaml`` and ``deploy_stack(StackSpec(...))`` deploy the same
config through the same builders (``stack_config`` writes it; config.yaml is its default).
"""

# No ``from __future__ import annotations`` here: Serve reads the builders' parameter annotation
# at run time to validate ``args`` into the pydantic model.

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray.serve import Application, Deployment

from autoops.contract import (
    INGRESS_DEPLOYMENT,
    RoutingTable,
    version_app_name,
    version_deployment_name,
)
from serve_apps.ingress import Ingress, IngressSettings
from serve_apps.registry import (
    CANDIDATE_VERSION,
    SMALL_VERSION,
    STABLE_VERSION,
    ModelRegistry,
    ensure_default_versions,
)
from serve_apps.replica import ModelDeployment

DEFAULT_APPLICATION = "digits"
"""The ingress application's name (and the model's)."""
DEFAULT_REGIONS = ("eu-west", "eu-central")
"""Regions of the default stack (names from the region catalogue)."""
REGISTRY_ENV = "AUTOOPS_REGISTRY"
"""Environment variable naming the registry folder (default: a per-user cache folder)."""

_DEFAULT_VERSIONS = (SMALL_VERSION, STABLE_VERSION, CANDIDATE_VERSION)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_registry_root() -> Path:
    """$AUTOOPS_REGISTRY, else $XDG_CACHE_HOME/autoops/registry, else ~/.cache/autoops/registry."""
    explicit = os.environ.get(REGISTRY_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "autoops" / "registry"


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as stream:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream.fileno(), fcntl.LOCK_UN)


def ensure_registry(root: Path, versions: tuple[str, ...] = ()) -> ModelRegistry:
    """The registry at ``root``, with the default versions trained if any asked one is missing.

    A version that is neither registered nor a default raises ValueError naming it.
    """
    registry = ModelRegistry(root)
    missing = [v for v in versions if v not in registry]
    unknown = [v for v in missing if v not in _DEFAULT_VERSIONS]
    if unknown:
        raise ValueError(
            f"model version(s) {unknown} are not in the registry at {root}; register them first "
            f"(defaults that train on demand: {list(_DEFAULT_VERSIONS)})"
        )
    if missing or not versions:
        with _exclusive(root / ".defaults.lock"):  # one builder trains, the others wait
            ensure_default_versions(registry)
    return registry


# --------------------------------------------------------------------------- builders


class VersionAppArgs(_Args):
    """One model version's application: a deployment per region."""

    registry_root: str | None = Field(
        default=None, description="Registry folder (default: default_registry_root())."
    )
    model: str = Field(default=DEFAULT_APPLICATION, description="Model name (deployment names).")
    version: str = Field(description="The registered version to serve.")
    regions: list[str] = Field(min_length=1, description="One deployment per region.")
    replicas: int = Field(default=1, ge=1, le=1000, description="Replicas per deployment.")
    num_cpus: float = Field(default=0.1, gt=0, le=64, description="CPUs per replica.")
    num_gpus: float = Field(
        default=0.0, ge=0, le=8, description="GPUs per replica (CUDA used when present)."
    )
    region_resources: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Custom resources a replica requests per region (e.g. a zone's fraction).",
    )
    region_labels: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Node label selector per region (Ray labels)."
    )


def build_version_app(args: VersionAppArgs) -> Application:
    """Serve application builder: one deployment of ``args.version`` per region."""
    args = VersionAppArgs.model_validate(args)
    root = Path(args.registry_root) if args.registry_root else default_registry_root()
    ensure_registry(root, (args.version,))
    regions = sorted(set(args.regions))
    bound = [
        _version_deployment(args, region).bind(str(root), args.version, region, args.num_gpus)
        for region in regions[1:]
    ]
    # Serve roots an application at one deployment: the first region's, with the other regions'
    # deployments bound to it so that they belong to the same application (it never calls them).
    return _version_deployment(args, regions[0]).bind(
        str(root), args.version, regions[0], args.num_gpus, *bound
    )


def _version_deployment(args: VersionAppArgs, region: str) -> Deployment:
    """The model deployment of ``args.version`` in ``region``, named by the contract's rule."""
    options: dict[str, Any] = {"num_cpus": args.num_cpus}
    if args.num_gpus > 0:
        options["num_gpus"] = args.num_gpus
    if args.region_resources.get(region):
        options["resources"] = dict(args.region_resources[region])
    if args.region_labels.get(region):
        options["label_selector"] = dict(args.region_labels[region])
    return ModelDeployment.options(
        name=version_deployment_name(args.model, args.version, region),
        num_replicas=args.replicas,
        ray_actor_options=options,
    )


class IngressArgs(_Args):
    """The ingress application: its settings and, from Python, the first routing table."""

    model: str = Field(default=DEFAULT_APPLICATION, description="Model name (deployment names).")
    routing: RoutingTable | None = Field(
        default=None,
        description="The first routing table (a config file sets it as the Ingress user_config).",
    )
    settings: IngressSettings = Field(
        default_factory=IngressSettings, description="Tokens (by env var name), timeouts, sizes."
    )
    replicas: int = Field(default=1, ge=1, le=100, description="Ingress replicas.")


def build_app(args: IngressArgs) -> Application:
    """Serve application builder: the traffic-splitting ingress (routes at the app's prefix)."""
    args = IngressArgs.model_validate(args)
    options: dict[str, Any] = {"num_replicas": args.replicas}
    if args.routing is not None:
        options["user_config"] = args.routing.model_dump(mode="json")
    return cast(Deployment, Ingress).options(**options).bind(args.settings)


# --------------------------------------------------------------------------- the whole stack


def _default_deployments() -> dict[str, list[str]]:
    return {
        SMALL_VERSION: [DEFAULT_REGIONS[0]],
        STABLE_VERSION: list(DEFAULT_REGIONS),
        CANDIDATE_VERSION: list(DEFAULT_REGIONS),
    }


class StackSpec(_Args):
    """Everything the serving stack is built from: versions, regions, first routing, access."""

    application: str = Field(default=DEFAULT_APPLICATION, description="Ingress app name.")
    model: str = Field(default=DEFAULT_APPLICATION, description="Model name.")
    registry_root: str | None = Field(
        default=None, description="Registry folder (default: default_registry_root())."
    )
    deployments: dict[str, list[str]] = Field(
        default_factory=_default_deployments, description="Regions of each version."
    )
    stable_version: str = Field(default=STABLE_VERSION, description="The stable version.")
    routing: RoutingTable | None = Field(
        default=None,
        description="The first routing table (default: all traffic to the stable version, "
        "regions weighted equally, the small version as the cascade's first answer, off).",
    )
    replicas: int = Field(default=1, ge=1, le=1000, description="Replicas per deployment.")
    num_gpus: float = Field(default=0.0, ge=0, le=8, description="GPUs per model replica.")
    settings: IngressSettings = Field(
        default_factory=IngressSettings, description="The ingress's settings."
    )
    external_scaler_enabled: bool = Field(
        default=True,
        description="Hand replica scaling to an outside controller (Serve's scale API); no "
        "deployment may then carry an autoscaling_config.",
    )
    access_log: bool = Field(
        default=True, description="Serve's per-request access log lines (off for load tests)."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables of every replica (runtime_env), e.g. Serve's own "
        "RAY_SERVE_* settings.",
    )
    ingress_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables of the ingress's replicas (runtime_env), e.g. tokens.",
    )

    @model_validator(mode="after")
    def _check(self) -> "StackSpec":
        if self.stable_version not in self.deployments:
            raise ValueError(f"stable_version {self.stable_version!r} is not in deployments")
        for version, regions in self.deployments.items():
            if not regions:
                raise ValueError(f"deployments[{version}]: at least one region")
            for region in regions:
                version_deployment_name(self.model, version, region)  # raises naming the part
        return self

    def routing_table(self) -> RoutingTable:
        """The first routing table: ``routing`` or the default one."""
        if self.routing is not None:
            return self.routing
        regions = self.deployments[self.stable_version]
        small = SMALL_VERSION if SMALL_VERSION in self.deployments else None
        return RoutingTable.model_validate(
            {
                "model": self.model,
                "stable_version": self.stable_version,
                "weights": {self.stable_version: 1.0},
                "region_weights": {r: 1.0 for r in regions},
                "deployments": {v: sorted(r) for v, r in sorted(self.deployments.items())},
                "cascade": {"enabled": False, "small_version": small},
            }
        )


def stack_config(spec: StackSpec, host: str = "127.0.0.1", port: int = 8000) -> dict[str, Any]:
    """Serve's declarative config (ServeDeploySchema) of the whole stack."""
    table = spec.routing_table()
    ingress: dict[str, Any] = {
        "name": spec.application,
        "route_prefix": "/",
        "import_path": "serve_apps.app:build_app",
        "args": {"model": spec.model, "settings": spec.settings.model_dump(mode="json")},
        "external_scaler_enabled": spec.external_scaler_enabled,
        "deployments": [{"name": INGRESS_DEPLOYMENT, "user_config": table.model_dump(mode="json")}],
    }
    if spec.env or spec.ingress_env:
        ingress["runtime_env"] = {"env_vars": {**spec.env, **spec.ingress_env}}
    apps = [ingress]
    for version, regions in sorted(spec.deployments.items()):
        args: dict[str, Any] = {
            "model": spec.model,
            "version": version,
            "regions": sorted(regions),
            "replicas": spec.replicas,
            "num_gpus": spec.num_gpus,
        }
        if spec.registry_root is not None:
            args["registry_root"] = spec.registry_root
        app: dict[str, Any] = {
            "name": version_app_name(spec.application, version),
            "route_prefix": None,
            "import_path": "serve_apps.app:build_version_app",
            "args": args,
            "external_scaler_enabled": spec.external_scaler_enabled,
        }
        if spec.env:
            app["runtime_env"] = {"env_vars": dict(spec.env)}
        apps.append(app)
    if not spec.access_log:
        for app in apps:
            app["logging_config"] = {"enable_access_log": False}
    return {"http_options": {"host": host, "port": port}, "applications": apps}


def deploy_stack(
    spec: StackSpec, host: str = "127.0.0.1", port: int = 8000, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Deploy the stack's config to the Serve of the connected Ray cluster; wait until running.

    Declarative, like ``serve deploy``: Serve keeps the config, so a controller can read and
    rewrite it. Returns the config deployed; raises RuntimeError naming a failed application.
    """
    from ray import serve
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema

    config = stack_config(spec, host, port)
    client = serve_start(http_options={"host": host, "port": port})
    client.deploy_apps(ServeDeploySchema.model_validate(config))
    names = [app["name"] for app in config["applications"]]
    wait_until_running(serve, names, timeout_s)
    return config


def wait_until_running(serve: Any, names: list[str], timeout_s: float) -> None:
    """Poll Serve until every named application runs; raise on a failed one or at the deadline.

    An unhealthy application (a replica died and is being replaced) is waited for, not failed.
    """
    import time

    deadline = time.monotonic() + timeout_s
    statuses: dict[str, Any] = {}
    while time.monotonic() < deadline:
        statuses = serve.status().applications
        failed = {
            n: statuses[n].message
            for n in names
            if n in statuses and statuses[n].status == "DEPLOY_FAILED"
        }
        if failed:
            raise RuntimeError(f"Serve applications failed: {failed}")
        if all(n in statuses and statuses[n].status == "RUNNING" for n in names):
            return
        time.sleep(0.5)
    waiting = {n: statuses[n].status if n in statuses else "absent" for n in names}
    raise RuntimeError(f"Serve applications not running after {timeout_s:.0f} s: {waiting}")


def main() -> None:
    """Print the default stack's config as YAML (``python -m serve_apps.app > config.yaml``)."""
    import yaml

    print(CONFIG_HEADER + yaml.safe_dump(stack_config(StackSpec()), sort_keys=False), end="")


CONFIG_HEADER = """\
# The AutoOps serving stack: the ingress app and one app per model version.
# Generated by `python -m serve_apps.app > serve_apps/config.yaml` (a test keeps it current).
#   serve deploy serve_apps/config.yaml     (a running Ray cluster with Serve)
#   serve run serve_apps/config.yaml        (starts a local Ray)
# Tokens: set AUTOOPS_INFERENCE_TOKEN / AUTOOPS_ADMIN_TOKEN in the replicas' environment.
"""


if __name__ == "__main__":
    main()
