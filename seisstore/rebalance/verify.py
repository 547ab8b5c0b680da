"""``rebalance verify``: is every object of a collection safe, and where are its replicas?

From the bulk inventory (two queries) and, with ``recompute``, one zone checksum per good
replica.  An object is *at risk* when it has no good replica, fewer good replicas than
``min_copies``, or good replicas that disagree (size, catalogue checksum, or a recomputed
checksum that differs from the catalogue's).  Stale replicas and replicas outside the
targets are reported, not at risk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from secure_irods.errors import classify
from secure_irods.query import ReplicaStatus

from .inventory import Inventory

if TYPE_CHECKING:
    from secure_irods.client import Client

__all__ = ["VerifyReport", "verify"]


@dataclass
class VerifyReport:
    objects: int = 0
    replicas: int = 0
    no_good: list[str] = field(default_factory=list)
    under_copies: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)   # recompute failed (e.g. resource down)
    checksums_computed: int = 0

    @property
    def at_risk(self) -> int:
        return len(set(self.no_good) | set(self.under_copies) | set(self.mismatches))

    def rows(self) -> list[tuple[str, int, bool]]:
        return [("objects", self.objects, False), ("replicas", self.replicas, False),
                ("without a good replica", len(self.no_good), True),
                ("fewer good replicas than --min-copies", len(self.under_copies), True),
                ("checksum or size mismatches", len(self.mismatches), True),
                ("stale replicas", len(self.stale), False),
                ("good replicas outside the targets", len(self.outside), False),
                ("replicas not recomputed (errors)", len(self.unchecked), False)]


def verify(client: "Client", inv: Inventory, *, min_copies: int = 1, targets: list[str] | None = None,
           recompute: bool = False) -> VerifyReport:
    report = VerifyReport(objects=len(inv.objects))
    allowed = {leaf for t in targets for leaf in inv.resources.leaves(t)} if targets else None
    for path in sorted(inv.objects):
        obj = inv.objects[path]
        report.replicas += len(obj.replicas)
        good = obj.good
        if not good:
            report.no_good.append(path)
            continue
        if len(good) < min_copies:
            report.under_copies.append(path)
        report.stale.extend(f"{path} #{r.number} on {r.leaf}" for r in obj.replicas
                            if r.status == ReplicaStatus.STALE)
        if allowed is not None:
            report.outside.extend(f"{path} #{r.number} on {r.leaf}" for r in good if r.leaf not in allowed)
        sums = {r.checksum for r in good if r.checksum}
        if len(sums) > 1 or len({r.size for r in good}) > 1:
            report.mismatches.append(path)
            continue
        if recompute:
            for r in good:
                try:
                    actual = client.replica_checksum(path, r.number)
                except Exception as exc:     # one replica never stops the check: say which
                    err = classify(exc)
                    report.unchecked.append(f"{path} #{r.number}: {err.message}")
                    continue
                report.checksums_computed += 1
                if sums and actual not in sums:
                    report.mismatches.append(path)
                    break
    return report
