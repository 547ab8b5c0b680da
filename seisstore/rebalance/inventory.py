"""Where the replicas of a collection are: the resource tree and every replica, from bulk GenQuery.

Two queries, whatever the collection's size (each GenQuery round trip returns at most
500 rows):

* **resources** -- ``R_RESC_ID, R_RESC_NAME, R_TYPE_NAME, R_RESC_PARENT, R_RESC_STATUS``:
  one round trip per 500 resources;
* **replicas** -- ``COLL_NAME, DATA_NAME, DATA_REPL_NUM, DATA_SIZE, D_DATA_CHECKSUM,
  D_RESC_ID, D_REPL_STATUS, D_MODIFY_TIME where COLL_NAME = 'root' || like 'root/%'``:
  ``ceil(replicas / 500)`` round trips.

A replica's *leaf* is the storage resource holding its bytes; its *group* is the root of
the leaf's hierarchy (a site's ``random`` resource in the seed paper's grid, or the leaf
itself when it has no parent).  Only good replicas (``D_REPL_STATUS = 1``) hold data a
reader can get; stale ones are listed for :mod:`~seisstore.rebalance.verify`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from secure_irods.query import Query, ReplicaStatus

if TYPE_CHECKING:
    from secure_irods.client import Client
    from seisstore.layout import Layout

__all__ = ["Resource", "Resources", "Replica", "DataObject", "Inventory"]


@dataclass(frozen=True)
class Resource:
    id: str
    name: str
    kind: str
    parent: str          # parent's id ("" for a root)
    status: str = ""     # "down" when an admin took it down


class Resources:
    """The zone's resource tree: leaves, groups (hierarchy roots), hierarchies, status."""

    def __init__(self, resources: list[Resource]) -> None:
        self.by_id = {r.id: r for r in resources}
        self.by_name = {r.name: r for r in resources}
        self.children: dict[str, list[Resource]] = defaultdict(list)
        for r in resources:
            if r.parent:
                self.children[r.parent].append(r)
        for kids in self.children.values():
            kids.sort(key=lambda r: r.name)

    @classmethod
    def load(cls, client: "Client") -> "Resources":
        rows = client.query(Query("R_RESC_ID", "R_RESC_NAME", "R_TYPE_NAME", "R_RESC_PARENT", "R_RESC_STATUS"))
        return cls([Resource(str(i), n, t or "", _parent_id(p), s or "") for i, n, t, p, s in rows])

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def leaves(self, name: str) -> list[str]:
        """Names of the storage leaves at or below resource ``name``."""
        res = self.by_name[name]
        kids = self.children.get(res.id)
        if not kids:
            return [res.name]
        return [leaf for k in kids for leaf in self.leaves(k.name)]

    def chain(self, name: str) -> list[Resource]:
        """Root first, down to ``name``."""
        out = [self.by_name[name]]
        while out[0].parent and out[0].parent in self.by_id:
            out.insert(0, self.by_id[out[0].parent])
        return out

    def group(self, leaf: str) -> str:
        return self.chain(leaf)[0].name

    def hierarchy(self, leaf: str) -> str:
        """``root;...;leaf`` as iRODS writes a resource hierarchy."""
        return ";".join(r.name for r in self.chain(leaf))

    def is_down(self, name: str) -> bool:
        """An admin marked it, or an ancestor, ``down`` (iadmin modresc NAME status down)."""
        return any(r.status == "down" for r in self.chain(name))

    def unit_of(self, leaf: str, units: list[str]) -> str | None:
        """Which of ``units`` (resource names) contains ``leaf``."""
        names = {r.name for r in self.chain(leaf)}
        return next((u for u in units if u in names), None)


def _parent_id(text: str | None) -> str:
    """R_RESC_PARENT is the parent's id (4.2+), possibly with a context after ``{``."""
    return (text or "").split("{", 1)[0].strip()


@dataclass(frozen=True)
class Replica:
    number: int
    leaf: str
    status: str
    size: int
    checksum: str
    mtime: str

    @property
    def good(self) -> bool:
        return self.status == ReplicaStatus.GOOD


@dataclass
class DataObject:
    path: str
    replicas: list[Replica] = field(default_factory=list)

    @property
    def good(self) -> list[Replica]:
        return [r for r in self.replicas if r.good]

    @property
    def size(self) -> int:
        good = self.good
        return good[0].size if good else max((r.size for r in self.replicas), default=0)


REPLICA_COLUMNS = ("COLL_NAME", "DATA_NAME", "DATA_REPL_NUM", "DATA_SIZE", "D_DATA_CHECKSUM", "D_RESC_ID",
                   "D_REPL_STATUS", "D_MODIFY_TIME")


def replica_query(root: str) -> Query:
    root = root.rstrip("/") or "/"
    return Query(*REPLICA_COLUMNS).under(root)


def object_query(path: str) -> Query:
    """The replicas of one data object (one round trip)."""
    parent, _, name = path.rpartition("/")
    return Query(*REPLICA_COLUMNS).where("COLL_NAME", "=", parent or "/").where("DATA_NAME", "=", name)


class Inventory:
    """Every data object under ``root`` with its replicas, and the resource tree."""

    def __init__(self, root: str, resources: Resources, objects: dict[str, DataObject]) -> None:
        self.root = root
        self.resources = resources
        self.objects = objects
        self.queries = 0

    @classmethod
    def load(cls, client: "Client", root: str) -> "Inventory":
        """Two bulk queries (see the module docstring); ``.queries`` counts the round trips."""
        before = client.queries
        resources = Resources.load(client)
        inv = cls.from_rows(root, resources, client.query(replica_query(root)))
        inv.queries = client.queries - before
        return inv

    @classmethod
    def from_rows(cls, root: str, resources: Resources, rows: Iterable[Sequence[str]]) -> "Inventory":
        objects: dict[str, DataObject] = {}
        names = {r.id: r.name for r in resources.by_id.values()}
        for coll, name, num, size, checksum, resc_id, status, mtime in rows:
            path = f"{coll}/{name}"
            obj = objects.get(path)
            if obj is None:
                obj = objects[path] = DataObject(path)
            obj.replicas.append(Replica(int(num), names.get(str(resc_id), str(resc_id)), str(status),
                                        int(size or 0), checksum or "", str(mtime or "")))
        for obj in objects.values():
            obj.replicas.sort(key=lambda r: r.number)
        return cls(root, resources, objects)

    def usage(self, by: str = "resource", layout: "Layout | None" = None) -> dict[str, tuple[int, int]]:
        """``name -> (bytes, objects)`` of good replicas per leaf resource, per group, or per
        station or year of ``layout`` (those count each object once)."""
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for obj in self.objects.values():
            good = obj.good
            if by in ("resource", "group"):
                seen = set()
                for r in good:
                    name = r.leaf if by == "resource" else self.resources.group(r.leaf)
                    if name in seen:
                        continue
                    seen.add(name)
                    out[name][0] += r.size
                    out[name][1] += 1
            else:
                if not good:
                    continue
                key = _parse(layout, self.root, obj.path)
                name = "(other)" if key is None else (f"{key.net}.{key.sta}" if by == "station" else str(key.day.year))
                out[name][0] += good[0].size
                out[name][1] += 1
        return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def _parse(layout, root: str, path: str):
    if layout is None:
        return None
    coll, _, name = path.rpartition("/")
    try:
        return layout.parse_object(root, coll, name)
    except Exception:
        return None
