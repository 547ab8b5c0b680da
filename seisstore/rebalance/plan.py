"""A rebalance plan: the moves, computed from the catalogue alone, as JSON lines.

Modes (``--to`` names the target resources: groups or leaves; ``--from`` the sources):

* ``spread`` -- even out the bytes over the targets (and drain any ``--from`` resource
  that is not a target): move replicas from the most over-full resource first until each
  target is within ``threshold`` percentage points of its share of the collection's bytes;
* ``move`` -- every replica on a ``--from`` resource goes to the targets, filling the
  emptiest target first;
* ``replicate`` -- one good replica of every object in each target (the seed paper's
  "replicate on every site before a big campaign"); nothing is trimmed.

Within a target group, the leaf a replica goes to is chosen at random (``seed``: the same
catalogue gives the same plan), like the seed paper's writes to a random node of a site.
A move trims its source only when the object keeps at least ``min_copies`` good replicas.
When draining (``move``, or a ``--from`` that is not a target) an object that every target
already holds, the move only trims the drained replica, after verifying the target's.

The file's first line is a header (``{"plan": {...}}``), then one move a line::

    {"i": 0, "path": "/z/a", "size": 1024, "checksum": "sha2:...", "mtime": "1700000000",
     "source": {"replica": 0, "resource": "disk1a", "group": "site1"},
     "target": {"resource": "site2", "leaf": "disk2b", "hierarchy": "site2;disk2b"}, "trim": true}

``size``, ``checksum`` and ``mtime`` are the source replica's at planning: an object that
changed since is skipped when the plan is applied.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from secure_irods.errors import InvalidInputError

from .inventory import Inventory

__all__ = ["Move", "Plan", "make_plan", "parse_target", "MODES"]

MODES = ("spread", "move", "replicate")


@dataclass(frozen=True)
class Move:
    i: int
    path: str
    size: int
    checksum: str
    mtime: str
    source: dict
    target: dict
    trim: bool

    @property
    def source_replica(self) -> int:
        return int(self.source["replica"])

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass
class Plan:
    collection: str
    mode: str
    targets: list[str]
    sources: list[str]
    weights: dict[str, float]
    min_copies: int
    threshold: float
    seed: int
    moves: list[Move] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> objects left out
    created: float = 0.0
    queries: int = 0

    @property
    def header(self) -> dict:
        return {"collection": self.collection, "mode": self.mode, "targets": self.targets, "sources": self.sources,
                "weights": self.weights, "min_copies": self.min_copies, "threshold": self.threshold,
                "seed": self.seed, "created": self.created, "moves": len(self.moves),
                "bytes": sum(m.size for m in self.moves), "before": self.before, "after": self.after,
                "shares": self.shares, "skipped": self.skipped}

    def write(self, path: str | Path) -> None:
        """Write atomically (temporary file, fsync, rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as out:
            out.write(json.dumps({"plan": self.header}, separators=(",", ":")) + "\n")
            for m in self.moves:
                out.write(m.to_json() + "\n")
            out.flush()
            import os
            os.fsync(out.fileno())
        tmp.replace(path)

    @classmethod
    def read(cls, path: str | Path) -> "Plan":
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise InvalidInputError(f"cannot read plan {path}: {exc.strerror}") from None
        try:
            head = json.loads(lines[0])["plan"]
            moves = [Move(**json.loads(line)) for line in lines[1:] if line.strip()]
        except (IndexError, KeyError, TypeError, ValueError):
            raise InvalidInputError(f"{path} is not a rebalance plan") from None
        plan = cls(head["collection"], head["mode"], head["targets"], head["sources"], head["weights"],
                   head["min_copies"], head["threshold"], head["seed"], moves, head.get("before", {}),
                   head.get("after", {}), head.get("shares", {}), head.get("skipped", {}), head.get("created", 0.0))
        if [m.i for m in moves] != list(range(len(moves))):
            raise InvalidInputError(f"{path}: moves are not numbered 0..{len(moves) - 1}")
        return plan


def parse_target(text: str, targets: list[str]) -> dict[str, float]:
    """``even`` or ``weights:R=W,...`` -> a weight per target."""
    if text == "even":
        return {t: 1.0 for t in targets}
    if not text.startswith("weights:"):
        raise InvalidInputError(f"--target is 'even' or 'weights:R=W,...', not {text!r}")
    weights: dict[str, float] = {}
    for part in text[len("weights:"):].split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise InvalidInputError(f"bad weight {part!r} (R=W, W a number)") from None
        if not sep or weights[name.strip()] < 0:
            raise InvalidInputError(f"bad weight {part!r} (R=W, W >= 0)")
    missing = set(targets) - set(weights)
    extra = set(weights) - set(targets)
    if missing or extra:
        raise InvalidInputError(f"weights must name exactly the --to resources ({', '.join(targets)})")
    if sum(weights.values()) <= 0:
        raise InvalidInputError("weights add up to 0")
    return weights


def make_plan(inv: Inventory, targets: Sequence[str], sources: Sequence[str] = (), *, mode: str = "spread",
              weights: dict[str, float] | None = None, min_copies: int = 1, threshold: float = 5.0,
              seed: int = 0) -> Plan:
    """The moves for ``mode`` (see the module docstring); uses ``inv`` only, no zone call."""
    targets, sources = list(dict.fromkeys(targets)), list(dict.fromkeys(sources))
    if mode not in MODES:
        raise InvalidInputError(f"unknown mode {mode!r} ({', '.join(MODES)})")
    if not targets:
        raise InvalidInputError("name at least one target resource (--to)")
    for name in targets + sources:
        if name not in inv.resources:
            raise InvalidInputError(f"no such resource: {name}")
    if mode == "move" and not sources:
        raise InvalidInputError("--mode move needs --from")
    if mode == "move" and set(sources) & set(targets):
        raise InvalidInputError("--mode move: --from and --to must differ")
    if min_copies < 1:
        raise InvalidInputError("--min-copies must be >= 1")
    if not 0 < threshold < 100:
        raise InvalidInputError("--threshold is a percentage, 0 < PCT < 100")
    weights = weights or {t: 1.0 for t in targets}
    units = targets + [s for s in sources if s not in targets]
    _check_disjoint(inv, units)
    leaf_unit = {leaf: u for u in units for leaf in inv.resources.leaves(u)}
    plan = Plan(inv.root, mode, targets, sources, weights, min_copies, threshold, seed, created=time.time(),
                queries=inv.queries)
    rng = random.Random(seed)
    load = {u: 0 for u in units}
    holders: dict[str, set[str]] = {}   # path -> units holding a good replica
    for path in sorted(inv.objects):
        obj = inv.objects[path]
        if not obj.good:
            plan.skipped["no good replica"] = plan.skipped.get("no good replica", 0) + 1
            continue
        held = {leaf_unit[r.leaf] for r in obj.good if r.leaf in leaf_unit}
        if not held and mode != "replicate":   # a plan moves only what the named resources hold
            where = ", ".join(sorted({inv.resources.group(r.leaf) or r.leaf for r in obj.good}))
            why = f"held only by {where}, not named (add --from {where} to move them)"
            plan.skipped[why] = plan.skipped.get(why, 0) + 1
        holders[path] = held
        for u in held:
            load[u] += obj.size
    plan.before = dict(load)
    total = sum(load.values())
    wsum = sum(weights.values())
    plan.shares = {u: (weights[u] / wsum if u in weights else 0.0) for u in units}
    if mode == "replicate":
        _plan_replicate(inv, plan, targets, holders, load, rng)
    else:
        _plan_spread(inv, plan, units, leaf_unit, holders, load, total, rng)
    plan.after = dict(load)
    return plan


def _check_disjoint(inv: Inventory, units: list[str]) -> None:
    seen: dict[str, str] = {}
    for u in units:
        for leaf in inv.resources.leaves(u):
            if leaf in seen:
                raise InvalidInputError(f"{u} and {seen[leaf]} share the leaf {leaf}")
            seen[leaf] = u


def _leaf_for(inv: Inventory, unit: str, obj, rng: random.Random) -> str | None:
    used = {r.leaf for r in obj.replicas}
    free = [leaf for leaf in inv.resources.leaves(unit) if leaf not in used]
    return rng.choice(free) if free else None


def _move(inv: Inventory, plan: Plan, obj, src, unit: str, leaf: str, trim: bool) -> None:
    plan.moves.append(Move(
        i=len(plan.moves), path=obj.path, size=src.size, checksum=src.checksum, mtime=src.mtime,
        source={"replica": src.number, "resource": src.leaf, "group": inv.resources.group(src.leaf)},
        target={"resource": unit, "leaf": leaf, "hierarchy": inv.resources.hierarchy(leaf)}, trim=trim))


def _plan_replicate(inv, plan, targets, holders, load, rng) -> None:
    for path in sorted(holders):
        obj = inv.objects[path]
        for unit in targets:
            if unit in holders[path]:
                continue
            leaf = _leaf_for(inv, unit, obj, rng)
            if leaf is None:
                plan.skipped["no free leaf in target"] = plan.skipped.get("no free leaf in target", 0) + 1
                continue
            src = next((r for r in obj.good if not inv.resources.is_down(r.leaf)), obj.good[0])
            _move(inv, plan, obj, src, unit, leaf, trim=False)
            holders[path].add(unit)
            load[unit] += obj.size


def _plan_spread(inv, plan, units, leaf_unit, holders, load, total, rng) -> None:
    share = {u: plan.shares[u] * total for u in units}
    tol = plan.threshold / 100.0 * total
    drain = set(plan.sources) - set(plan.targets) if plan.mode == "spread" else set(plan.sources)
    by_unit: dict[str, list] = {u: [] for u in units}
    for path in holders:
        obj = inv.objects[path]
        for r in obj.good:
            u = leaf_unit.get(r.leaf)
            if u is not None:
                by_unit[u].append((obj, r))
    # most over-full sources first
    order = sorted(units, key=lambda u: (u not in drain, -(load[u] - share[u])))
    allowed = set(plan.sources) if plan.sources else set(units)
    for src_unit in order:
        if src_unit not in allowed:
            continue
        must_empty = src_unit in drain
        candidates = sorted(by_unit[src_unit], key=lambda item: (-item[1].size, item[0].path))
        for obj, rep in candidates:
            excess = load[src_unit] - share[src_unit]
            if not must_empty and excess <= tol / 2:
                break
            size = rep.size
            choices = [t for t in plan.targets if t != src_unit and t not in holders[obj.path]]
            if not choices:
                if must_empty:   # every target already holds it: only trim the replica being drained
                    _trim_only(inv, plan, obj, rep, holders, load, src_unit, leaf_unit)
                continue
            dest = max(choices, key=lambda t: (share[t] - load[t], t))
            deficit = share[dest] - load[dest]
            if not must_empty and (deficit <= 0 or size > excess + tol / 2 or size > deficit + tol / 2):
                continue
            leaf = _leaf_for(inv, dest, obj, rng)
            if leaf is None:
                continue
            trim = len(obj.good) >= plan.min_copies
            _move(inv, plan, obj, rep, dest, leaf, trim)
            holders[obj.path].add(dest)
            load[dest] += size
            if trim:
                holders[obj.path].discard(src_unit)
                load[src_unit] -= size


def _trim_only(inv, plan, obj, rep, holders, load, src_unit, leaf_unit) -> None:
    """A move whose target already holds a good replica: apply verifies that one, then trims ``rep``."""
    if len(obj.good) - 1 < plan.min_copies:
        plan.skipped["kept for --min-copies"] = plan.skipped.get("kept for --min-copies", 0) + 1
        return
    kept = next(r for r in obj.good if leaf_unit.get(r.leaf) in plan.targets)
    unit = leaf_unit[kept.leaf]
    _move(inv, plan, obj, rep, unit, kept.leaf, trim=True)
    holders[obj.path].discard(src_unit)
    load[src_unit] -= rep.size
