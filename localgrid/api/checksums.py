"""Checksums: the sha2 the server registers, and DATA_OBJ_CHKSUM_AN (ichksum) as rsDataObjChksum.cpp answers it:
look up, compute and register (-f), or verify (-K), which reports its findings and never writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from .. import protocol as p
from ..catalog import GOOD, AccessLevel, ReplicaStatus
from ..errors import ErrorCode, fail
from . import api
from .numbers import ApiNumber
from .requests import open_request
from .session import Session


def sha2(path: Path) -> str:
    """iRODS's sha2 checksum: 'sha2:' + base64 of the SHA-256 digest."""
    with open(path, "rb") as f:
        return sha2_of_fd(f.fileno())


def sha2_of_fd(fd: int) -> str:
    """``sha2`` of an open file, read by offset: a rename may have moved the file since it was opened."""
    h = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 8 * 1024 * 1024, offset):
        h.update(chunk)
        offset += len(chunk)
    return "sha2:" + base64.b64encode(h.digest()).decode()


def wants_checksum(kv: dict) -> bool:
    """iput -k / -K: the server computes (and for -K compares) the checksum at close."""
    return "regChksum" in kv or "verifyChksum" in kv



@api(ApiNumber.DATA_OBJ_CHKSUM_AN)
def api_chksum(ctx: Session, msg):
    """ichksum as rsDataObjChksum.cpp answers it: look up, compute (-f) or verify (-K, which never writes)."""
    body, path, kv = open_request(msg)
    reps = ctx.replicas_or_fail(path, AccessLevel.READ_OBJECT)
    specific = "replNum" in kv or "rescName" in kv
    if ("replNum" in kv and "rescName" in kv) or ("ChksumAll" in kv and specific) or \
            ("verifyChksum" in kv and "forceChksum" in kv):
        raise fail("USER_INCOMPATIBLE_PARAMS", "incompatible checksum options")
    if "irodsAdmin" in kv and not ctx.is_admin():
        raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "admin keyword used by a non-admin")
    if "verifyChksum" in kv:
        return _verify_checksums(ctx, path, reps, kv, specific)
    if specific or "ChksumAll" not in kv:
        target = _chksum_target(ctx, reps, kv)
        if target["data_checksum"] and "forceChksum" not in kv:
            return 0, p.pack_str(target["data_checksum"])
        return 0, p.pack_str(_register_checksum(ctx, target))
    good = [r for r in reps if r["data_is_dirty"] == GOOD]
    if not good:
        raise fail("SYS_NO_GOOD_REPLICA", f"{path} has no good replica")
    sums = {r["data_checksum"] if r["data_checksum"] and "forceChksum" not in kv else _register_checksum(ctx, r)
            for r in good}
    if len(sums) > 1:
        raise fail("USER_CHKSUM_MISMATCH", "WARNING: Data object has replicas with different checksums.")
    return 0, p.pack_str(sums.pop())


def _chksum_target(ctx: Session, reps, kv):
    """The one replica a checksum lookup or a targeted verification reads (sortObjInfoForOpen, then
    check_replica_accessibility: good or stale, never one being written)."""
    if "replNum" in kv:
        target = next((r for r in reps if str(r["data_repl_num"]) == kv["replNum"]), None)
    elif kv.get("rescName"):
        under = ctx.res.under(kv["rescName"])
        target = next((r for r in reps if r["resc_id"] in under), None)
    else:
        target = sorted(reps, key=lambda r: r["data_is_dirty"] != GOOD)[0]
    if target is None:
        raise fail("SYS_REPLICA_DOES_NOT_EXIST", "no such replica")
    if not ReplicaStatus(target["data_is_dirty"]).at_rest:
        raise fail("SYS_REPLICA_INACCESSIBLE", f"replica {target['data_repl_num']} is being written")
    return target


def _register_checksum(ctx: Session, r) -> str:
    if not ctx.res.leaf_is_up(r["resc_id"]):   # the bytes must be read: the resource must be up
        raise fail("SYS_RESC_IS_DOWN", f"resource of replica {r['data_repl_num']} is down")
    actual = sha2(Path(r["data_path"]))
    with ctx.cat.transaction():
        ctx.cat.update_replica(r["data_id"], r["data_repl_num"], data_checksum=actual)
    return actual


def _verify_checksums(ctx: Session, path: str, reps, kv: dict, specific: bool):
    """ichksum -K: every good replica (or the one named) checked for size, checksum present and checksum
    right; the findings come back as CHECK_VERIFICATION_RESULTS with a JSON list, nothing is written."""
    targets = [_chksum_target(ctx, reps, kv)] if specific else [r for r in reps if r["data_is_dirty"] == GOOD]
    if not targets:
        raise fail("SYS_NO_GOOD_REPLICA", f"{path} has no good replica")
    results = []

    def report(severity: str, name: str, message: str) -> None:
        results.append({"severity": severity, "error_code": int(ErrorCode[name]) if name else 0,
                        "message": message})

    if not specific and len(reps) > len(targets):
        report("info", "", f"INFO: Number of replicas skipped: {len(reps) - len(targets)}")
    for r in targets:
        try:
            size = os.stat(r["data_path"]).st_size
        except OSError:
            size = None
        if size != r["data_size"]:
            report("error", "USER_FILE_SIZE_MISMATCH",
                   f"ERROR: Physical size does not match size in catalog for replica [{r['data_repl_num']}].")
    missing = [r for r in targets if not r["data_checksum"]]
    for r in missing:
        report("warning", "CAT_NO_CHECKSUM_FOR_REPLICA",
               f"WARNING: No checksum available for replica [{r['data_repl_num']}].")
    if not missing:
        if "no_compute" not in kv:
            for r in targets:
                if not ctx.res.leaf_is_up(r["resc_id"]) or sha2(Path(r["data_path"])) != r["data_checksum"]:
                    report("error", "USER_CHKSUM_MISMATCH", "ERROR: Computed checksum does not match what is in"
                           f" the catalog for replica [{r['data_repl_num']}].")
        if len({r["data_checksum"] for r in targets}) > 1:
            report("warning", "USER_CHKSUM_MISMATCH", "WARNING: Data object has replicas with different checksums.")
    if results:
        text = json.dumps(results)
        # the findings travel in the body only: rsDataObjChksum adds nothing to the error stack
        raise fail("CHECK_VERIFICATION_RESULTS", text, p.pack_str(text), stacked=False)
    return 0, b""      # all verified: the server sends no checksum back
