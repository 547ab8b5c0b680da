"""Resource hierarchies: where a new replica lands and which replica a read is served from.

iRODS 4 replaced the resource groups of iRODS 3 (the seed paper's per-site groups) by
coordinating resources: ``random`` sends each new replica to a random child, ``passthru``
to its only child, ``replication`` writes to one child and copies the replica to every
other child when the write completes, ``compound`` writes to its ``cache`` child and copies
the replica to its ``archive`` child on close, ``deferred`` leaves the choice to its children's
votes (equal here: the first child); ``unixfilesystem`` leaves hold the bytes in a vault
directory.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from .catalog import GOOD, INTERMEDIATE, Catalog, ReplicaStatus
from .errors import fail

LEAF_TYPES = {"unixfilesystem"}
COORDINATING_TYPES = {"random", "passthru", "replication", "compound", "deferred"}
REPLICATING_TYPES = {"replication", "compound"}   # a write below one reaches all its leaves on close
TYPES = LEAF_TYPES | COORDINATING_TYPES


class Resources:
    def __init__(self, catalog: Catalog, faults, rng: random.Random) -> None:
        self.cat = catalog
        self.faults = faults      # its `down` set changes while the server runs
        self.rng = rng

    def is_up(self, row: sqlite3.Row) -> bool:
        return row["resc_name"] not in self.faults.down and row["resc_status"] != "down"

    def leaf_is_up(self, resc_id: int) -> bool:
        """A leaf is reachable when it and every ancestor are up."""
        row = self.cat.resource_by_id(resc_id)
        while row is not None:
            if not self.is_up(row):
                return False
            row = self.cat.resource_by_id(int(row["resc_parent"])) if row["resc_parent"] else None
        return True

    def root(self, name: str) -> sqlite3.Row:
        row = self.cat.resource(name)
        if row is None:
            raise fail("SYS_RESC_DOES_NOT_EXIST", f"no resource {name!r}")
        return row

    def leaves(self, row: sqlite3.Row) -> list[sqlite3.Row]:
        if row["resc_type_name"] in LEAF_TYPES:
            return [row]
        return [leaf for child in self.cat.children(row["resc_id"]) for leaf in self.leaves(child)]

    def pick_leaf(self, name: str, exclude: set[int] = frozenset()) -> sqlite3.Row:
        """The leaf a new replica is written to, following the coordinating resources' rules."""
        row = self.root(name)
        while row["resc_type_name"] not in LEAF_TYPES:
            if not self.is_up(row):
                raise fail("SYS_RESC_IS_DOWN", f"resource {row['resc_name']} is down")
            children = [c for c in self.cat.children(row["resc_id"])
                        if self.is_up(c) and any(l["resc_id"] not in exclude and self.leaf_is_up(l["resc_id"])
                                                 for l in self.leaves(c))]
            if not children:
                raise fail("SYS_RESC_IS_DOWN" if self.cat.children(row["resc_id"]) else "HIERARCHY_ERROR",
                           f"no usable child under {row['resc_name']}")
            if row["resc_type_name"] in ("passthru", "deferred"):
                row = children[0]
            elif row["resc_type_name"] == "compound":   # writes land in the cache (context "cache")
                row = next((c for c in children if c["resc_parent_context"] == "cache"), children[0])
            else:
                row = self.rng.choice(children)
        if row["resc_id"] in exclude:
            raise fail("SYS_COPY_ALREADY_IN_RESC", f"a replica is already on {row['resc_name']}")
        if not self.leaf_is_up(row["resc_id"]):
            raise fail("SYS_RESC_IS_DOWN", f"resource {row['resc_name']} is down")
        return row

    def check_free_space(self, leaf: sqlite3.Row, size: int) -> None:
        """voting.cpp's replica_exceeds_resource_free_space: a leaf whose context sets
        ``minimum_free_space_for_create_in_bytes`` refuses a new replica (USER_FILE_TOO_LARGE) when its
        ``free_space`` (iadmin modresc NAME freespace) minus that minimum is below the declared size."""
        context = dict(kv.partition("=")[::2] for kv in (leaf["resc_context"] or "").split(";") if "=" in kv)
        minimum = context.get("minimum_free_space_for_create_in_bytes")
        if size < 0 or minimum is None:
            return
        free = leaf["free_space"] or ""
        if not (minimum.isdigit() and free.isdigit()) or int(minimum) > int(free) or int(free) - int(minimum) < size:
            raise fail("USER_FILE_TOO_LARGE", f"a replica of {size} bytes exceeds the free space of {leaf['resc_name']}")

    def replicating_ancestor(self, resc_id: int) -> sqlite3.Row | None:
        """The nearest ``replication`` or ``compound`` resource above a leaf: a write there must reach all its
        leaves (compound: the archive gets the cache's replica when the write closes)."""
        row = self.cat.resource_by_id(resc_id)
        while row is not None and row["resc_parent"]:
            row = self.cat.resource_by_id(int(row["resc_parent"]))
            if row is not None and row["resc_type_name"] in REPLICATING_TYPES:
                return row
        return None

    def under(self, name: str) -> set[int]:
        """Leaf ids below a resource name (the name itself when it is a leaf)."""
        return {l["resc_id"] for l in self.leaves(self.root(name))}

    def readable(self, replicas: list[sqlite3.Row], resc_name: str | None = None,
                 repl_num: int | None = None, hierarchy: bool = False) -> sqlite3.Row:
        """The replica an open for reading is served from, by the server's vote (voting.cpp).

        A good replica votes high, a stale one low but not zero: the only replica left after a
        dropped upload is served, stale.  A replica open for writing or write-locked votes zero.
        When every candidate votes zero, resolve_hierarchy_for_open answers SYS_REPLICA_INACCESSIBLE
        for a requested replica number and HIERARCHY_ERROR otherwise; a full hierarchy named by the
        client (``hierarchy``: no vote) meets the lock itself (logical_locking.cpp's try_lock).
        """
        candidates = replicas
        if resc_name:
            allowed = self.under(resc_name)
            candidates = [r for r in candidates if r["resc_id"] in allowed]
        if repl_num is not None:
            candidates = [r for r in candidates if r["data_repl_num"] == repl_num]
            if not candidates:
                raise fail("SYS_REPLICA_DOES_NOT_EXIST", f"no replica {repl_num}")
        if not candidates:
            raise fail("SYS_REPLICA_INACCESSIBLE", "no replica there")
        at_rest = [r for r in candidates if ReplicaStatus(r["data_is_dirty"]).at_rest]
        if not at_rest:
            busy = candidates[0]
            if hierarchy:
                raise fail("INTERMEDIATE_REPLICA_ACCESS" if busy["data_is_dirty"] == INTERMEDIATE
                           else "LOCKED_DATA_OBJECT_ACCESS", f"replica {busy['data_repl_num']} is being written")
            if repl_num is not None:
                raise fail("SYS_REPLICA_INACCESSIBLE", f"Requested replica [{repl_num}] voted 0.0.")
            raise fail("HIERARCHY_ERROR", "no valid resource found for data object")
        up = [r for r in at_rest if self.leaf_is_up(r["resc_id"])]
        if not up:
            raise fail("SYS_RESC_IS_DOWN", "every replica is on a resource that is down")
        return sorted(up, key=lambda r: r["data_is_dirty"] != GOOD)[0]


def physical_path(vault: str, logical: str) -> Path:
    """Vault path of a replica: the logical path without its zone, as unixfilesystem does."""
    parts = logical.strip("/").split("/")[1:]
    return Path(vault).joinpath(*parts)
