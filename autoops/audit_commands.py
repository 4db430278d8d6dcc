"""``autoops audit`` and ``autoops status``: read the controller's store (registered by the CLI).

Both only read: they open an existing store and never publish its head. Exit codes: 0 ok,
1 a failure (no store, a broken audit chain, an unreadable state), 2 a usage error.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoops.model import (
    Hold,
    Promote,
    Retrain,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)
from autoops.ports import AuditRecord
from autoops.store.codec import action_from_json, state_from_json
from autoops.store.sqlite import SavedState, SQLiteStore, StoreError, VerifyResult

__all__ = [
    "audit_command",
    "default_store_path",
    "describe_action",
    "parse_since",
    "status_command",
]

DEFAULT_STORE = Path("autoops-state") / "autoops.db"
"""The store path when neither ``--store`` nor ``AUTOOPS_STORE`` names one (relative to cwd)."""

StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="The controller's store (default: AUTOOPS_STORE, else ./autoops-state/autoops.db).",
        show_default=False,
    ),
]
PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--policy", "-p", help="Only this policy (its metadata.name).", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")


def default_store_path() -> Path:
    """The store path: AUTOOPS_STORE if set, else ./autoops-state/autoops.db."""
    env = os.environ.get("AUTOOPS_STORE")
    return Path(env) if env else DEFAULT_STORE


def parse_since(text: str, now: float) -> float:
    """Epoch seconds from epoch seconds, an ISO 8601 time (UTC if no zone) or an age (15m, 2h)."""
    value = text.strip()
    age = _AGE.match(value.lower())
    if age:
        return now - float(age.group(1)) * _UNITS[age.group(2)]
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r}: expected epoch seconds, an ISO 8601 time (2024-05-01T12:00:00Z) "
            "or an age (90s, 15m, 2h, 1d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _fail(message: str) -> typer.Exit:
    """Print a one-line error on stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _open(store: Path | None) -> SQLiteStore:
    """The existing store, read-only in spirit (never created, its head never published)."""
    path = store if store is not None else default_store_path()
    try:
        return SQLiteStore(path, create=False, publish=False)
    except StoreError as exc:
        raise _fail(str(exc)) from None


def _when(t: float | None) -> str:
    """A wall time as UTC ISO 8601 to the second, or a dash."""
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _strict(value: Any) -> Any:
    """JSON data with NaN and infinities spelled as strings, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_strict(value), allow_nan=False)


def _shares(weights: Mapping[str, float]) -> str:
    return " ".join(f"{k}={w:.0%}" for k, w in sorted(weights.items()))


def describe_action(data: Any) -> str:
    """One short line for an action stored as JSON (its kind if it cannot be read)."""
    try:
        action = action_from_json(data)
    except ValueError:
        kind = data.get("kind") if isinstance(data, Mapping) else None
        return str(kind or "?")
    if isinstance(action, SetTraffic):
        shadow = action.shadow_version
        extra = f" (shadow {shadow} {action.shadow_fraction:.0%})" if shadow else ""
        return f"traffic {_shares(action.weights)}{extra}"
    if isinstance(action, SetReplicas):
        return "replicas " + " ".join(f"{r}={n}" for r, n in sorted(action.replicas.items()))
    if isinstance(action, SetRegionWeights):
        return f"regions {_shares(action.weights)}"
    if isinstance(action, SetCascadeThreshold):
        return f"cascade threshold {action.threshold:.2f}"
    if isinstance(action, Rollback):
        return f"rollback {action.from_version} -> {action.to_version}"
    if isinstance(action, Promote):
        return f"promote {action.version}"
    if isinstance(action, Retrain):
        return f"retrain from {action.base_version}"
    if isinstance(action, Hold):
        return f"hold: {action.reason}"
    return f"alert [{action.severity}] {action.message}"


def _summary(record: AuditRecord) -> str:
    """What a record says, in one line."""
    body = record.body
    if record.kind == "intent":
        actions = body.get("actions")
        text = "; ".join(describe_action(a) for a in actions) if isinstance(actions, list) else ""
        guards = body.get("guard_changes")
        if isinstance(guards, list) and guards:
            text += f" (guards changed {len(guards)})"
        return text or _compact(body)
    if record.kind == "outcome":
        text = f"{describe_action(body.get('action'))} -> {body.get('outcome', '?')}"
        if body.get("detail"):
            text += f": {body['detail']}"
        if body.get("resumed"):
            text += " (resumed)"
        return text
    reasons = body.get("reasons")
    if isinstance(reasons, list) and reasons:
        return "; ".join(str(r) for r in reasons)
    return _compact(body)


def _compact(body: Mapping[str, Any], width: int = 120) -> str:
    text = _dumps(body)
    return text if len(text) <= width else text[: width - 3] + "..."


def _record_json(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "time": record.time,
        "policy": record.policy,
        "reconcile_id": record.reconcile_id,
        "kind": record.kind,
        "body": record.body,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


# --------------------------------------------------------------------------- audit


def audit_command(
    store: StoreOption = None,
    policy: PolicyOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only records from this time on: epoch seconds, ISO 8601 (UTC if no zone), "
            "or an age such as 15m, 2h, 1d.",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="Only records of this kind: intent, outcome, decision, note (repeatable).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Only the newest N matching records.", show_default=False
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check the whole hash chain (every policy) and that it reaches the published "
            "head, instead of listing; exit 1 at the first bad record.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the audit log (what the controller saw, decided and did), or verify its chain."""
    since_t: float | None = None
    if since is not None:
        try:
            since_t = parse_since(since, time.time())
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
    opened = _open(store)
    try:
        if verify:
            _verify(opened, as_json)
            return
        try:
            records = opened.records(policy, since_t, kind, limit=limit)
        except StoreError as exc:
            raise _fail(str(exc)) from None
        if as_json:
            for record in records:
                typer.echo(_dumps(_record_json(record)))
            return
        _print_records(records)
    finally:
        opened.close()


def _print_records(records: list[AuditRecord]) -> None:
    table = Table(title=f"audit log: {len(records)} records", title_justify="left")
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("policy", overflow="fold")
    table.add_column("reconcile", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("what", overflow="fold")
    for record in records:
        table.add_row(
            str(record.seq),
            _when(record.time),
            escape(record.policy),
            escape(record.reconcile_id),
            escape(record.kind),
            escape(_summary(record)),
        )
    Console(soft_wrap=False).print(table)


def _verify(store: SQLiteStore, as_json: bool) -> None:
    """Verify the chain against the published head; exit 1 at the first bad record."""
    try:
        published = store.published_head()
        problem = None
    except StoreError as exc:
        published, problem = None, str(exc)
    result = store.verify(published)
    if problem is not None and result.ok:
        result = VerifyResult(False, result.checked, None, problem, result.head)
    if as_json:
        typer.echo(
            _dumps(
                {
                    "ok": result.ok,
                    "checked": result.checked,
                    "first_bad_seq": result.first_bad_seq,
                    "reason": result.reason,
                    "head": _head_json(result.head),
                    "published_head": _head_json(published),
                    "head_file": str(store.head_path),
                }
            )
        )
    elif result.ok:
        head = result.head
        where = f"head seq {head[0]} ({head[1][:16]})" if head else "empty log"
        typer.echo(f"OK: {result.checked} records intact, {where}")
        if published is None:
            typer.echo(
                f"warning: no published head at {store.head_path}: a cut tail cannot be detected",
                err=True,
            )
        else:
            typer.echo(f"OK: the log reaches the published head (seq {published[0]})")
    else:
        at = f" at seq {result.first_bad_seq}" if result.first_bad_seq is not None else ""
        typer.echo(f"FAILED{at}: {result.reason}", err=True)
    if not result.ok:
        raise typer.Exit(1)


def _head_json(head: tuple[int, str] | None) -> dict[str, Any] | None:
    return None if head is None else {"seq": head[0], "hash": head[1]}


# --------------------------------------------------------------------------- status


def _applied(store: SQLiteStore, policy: str) -> dict[str, Any]:
    """The last applied traffic split, region weights and replicas, from the outcome records."""
    out: dict[str, Any] = {"traffic": None, "region_weights": None, "replicas": None}
    latest: AuditRecord | None = None
    for kind in ("set_traffic", "rollback", "promote"):
        found = store.last_outcome(policy, kind)
        if found is not None and (latest is None or found.seq > latest.seq):
            latest = found
    if latest is not None:
        action = latest.body.get("action") or {}
        if action.get("kind") == "set_traffic":
            out["traffic"] = action.get("weights")
        elif action.get("kind") == "rollback":
            out["traffic"] = {str(action.get("to_version")): 1.0}
        elif action.get("kind") == "promote":
            out["traffic"] = {str(action.get("version")): 1.0}
    for kind, key, field in (
        ("set_region_weights", "region_weights", "weights"),
        ("set_replicas", "replicas", "replicas"),
    ):
        found = store.last_outcome(policy, kind)
        if found is not None:
            out[key] = (found.body.get("action") or {}).get(field)
    return out


def _policy_status(store: SQLiteStore, policy: str, saved: SavedState | None) -> dict[str, Any]:
    """One policy's saved state, last applied targets, last decision and audit head."""
    entry: dict[str, Any] = {"policy": policy, "error": None}
    entry["saved_at"] = saved.saved_at if saved else None
    if saved is not None:
        try:
            state = state_from_json(saved.state)
        except ValueError as exc:
            entry["error"] = f"unreadable saved state: {exc}"
        else:
            rollout = state.rollout
            entry.update(
                phase=rollout.phase.value,
                stable_version=rollout.stable_version,
                canary_version=rollout.canary_version,
                step=rollout.step,
                failed_checks=rollout.failed_checks,
                rejected_versions=list(rollout.rejected_versions),
            )
    entry.update(_applied(store, policy))
    last = store.records(policy, kinds=("decision", "intent"), limit=1)
    entry["last_decision_at"] = last[0].time if last else None
    entry["pending_intents"] = [r.seq for r in store.pending_intents(policy)]
    entry["head"] = _head_json(store.head(policy))
    return entry


def status_command(
    store: StoreOption = None,
    policy: PolicyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show each policy's saved state: phase, versions, step, weights, last decision, audit head."""
    opened = _open(store)
    try:
        try:
            names = opened.policies()
            if policy is not None:
                if policy not in names:
                    raise _fail(f"{opened.path}: no saved state or records for policy {policy!r}")
                names = [policy]
            saved = {s.policy: s for s in opened.saved_states()}
            entries = [_policy_status(opened, name, saved.get(name)) for name in names]
            head = opened.head()
        except StoreError as exc:
            raise _fail(str(exc)) from None
        try:
            published: tuple[int, str] | None = opened.published_head()
            head_error = None
        except StoreError as exc:
            published, head_error = None, str(exc)
        if as_json:
            typer.echo(
                _dumps(
                    {
                        "store": str(opened.path),
                        "head": _head_json(head),
                        "published_head": _head_json(published),
                        "policies": entries,
                    }
                )
            )
        else:
            _print_status(opened, entries, head, published)
        if head_error is not None:
            typer.echo(f"warning: {head_error}", err=True)
        if any(e["error"] for e in entries):
            raise typer.Exit(1)
    finally:
        opened.close()


def _status_rows(e: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (field, value) lines that describe one policy's status."""
    if e["error"]:
        phase = f"[red]{escape(e['error'])}[/]"
    elif e.get("phase") is None:
        phase = "- (no saved state)"
    else:
        phase = f"{e['phase']} (step {e['step']}, {e['failed_checks']} failed checks)"
    replicas = e["replicas"]
    pending = e["pending_intents"]
    head = e["head"]
    return [
        ("phase", phase),
        ("stable", escape(e.get("stable_version") or "-")),
        ("canary", escape(e.get("canary_version") or "-")),
        ("traffic", escape(_shares(e["traffic"])) if e["traffic"] else "-"),
        ("regions", escape(_shares(e["region_weights"])) if e["region_weights"] else "-"),
        (
            "replicas",
            escape(" ".join(f"{r}={n}" for r, n in sorted(replicas.items()))) if replicas else "-",
        ),
        ("state saved", _when(e["saved_at"])),
        ("last decision", _when(e["last_decision_at"])),
        (
            "pending intents",
            f"[yellow]{len(pending)} (seq {', '.join(map(str, pending))})[/]" if pending else "0",
        ),
        ("audit head", f"seq {head['seq']} {head['hash'][:16]}" if head else "-"),
    ]


def _print_status(
    store: SQLiteStore,
    entries: list[dict[str, Any]],
    head: tuple[int, str] | None,
    published: tuple[int, str] | None,
) -> None:
    console = Console(soft_wrap=False)
    console.print(f"store {escape(str(store.path))}")
    for e in entries:
        table = Table(
            title=f"policy {escape(e['policy'])}", title_justify="left", show_header=False
        )
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for field, value in _status_rows(e):
            table.add_row(field, value)
        console.print(table)
    console.print("audit head: " + (f"seq {head[0]} hash {head[1]}" if head else "empty log"))
    if published is not None:
        console.print(f"published head: seq {published[0]} hash {published[1]}")
