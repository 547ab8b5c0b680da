"""Copying a replica's bytes to another replica: what rsDataObjRepl does after choosing source and
destination, and what a replication or compound resource does to its other leaves when a write closes.

A new replica's file goes to the free physical path beside the one the vault layout names (never over
another replica's file); an existing replica's file is replaced atomically.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import GOOD, now
from ..resources import physical_path
from ..vault import move_exclusive, place
from .session import Session

if TYPE_CHECKING:
    from .data_objects import Descriptor


def replicate_within(ctx: Session, desc: Descriptor) -> None:
    """Under a ``replication`` resource, bring every other up leaf to the new content."""
    root = ctx.res.replicating_ancestor(desc.resc_id)
    if root is None:
        return
    reps = ctx.cat.replicas(desc.path)
    source = next(r for r in reps if r["data_repl_num"] == desc.repl_num)
    have = {r["resc_id"]: r for r in reps}
    next_num = max(r["data_repl_num"] for r in reps) + 1
    for leaf in ctx.res.leaves(root):
        if leaf["resc_id"] == desc.resc_id or not ctx.res.leaf_is_up(leaf["resc_id"]):
            continue
        if leaf["resc_id"] not in have:
            copy_replica(ctx, source, leaf["resc_id"], next_num,
                               physical_path(leaf["resc_def_path"], desc.path), new=True)
            next_num += 1
        elif have[leaf["resc_id"]]["data_is_dirty"] != GOOD:
            r = have[leaf["resc_id"]]
            copy_replica(ctx, source, r["resc_id"], r["data_repl_num"], Path(r["data_path"]))


def copy_replica(ctx: Session, src, resc_id: int, repl_num: int, dest: Path, new: bool = False) -> None:
    """Copy a good replica's bytes to another replica: its own file (``new=False``), or a new replica's file at
    ``dest`` or, when ``dest`` is taken, beside it (resolveDupFilePath): never over another replica's file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".repl-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copyfile(src["data_path"], tmp)
        if new:
            dest, _ = place(ctx.cat, dest, repl_num, lambda path: move_exclusive(tmp, path))
        else:
            os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    with ctx.cat.transaction():
        if new:
            source = ctx.cat.replica(src["data_id"], src["data_repl_num"])
            ctx.cat.copy_replica_row(source, data_repl_num=repl_num, resc_id=resc_id, data_path=str(dest),
                                      data_is_dirty=GOOD)
        else:
            ctx.cat.update_replica(src["data_id"], repl_num, data_is_dirty=GOOD, data_size=src["data_size"],
                                    data_checksum=src["data_checksum"], modify_ts=now())
