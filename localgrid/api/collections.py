"""The name space: create (COLL_CREATE_AN), remove (RM_COLL_AN) and rename (DATA_OBJ_RENAME_AN, which moves
data objects too) collections, unlink data objects (DATA_OBJ_UNLINK_AN), as rsCollCreate.cpp, rsRmColl.cpp,
rsDataObjRename.cpp and rsDataObjUnlink.cpp.

A rename, and a remove to the trash (a rename too), moves the files of the replicas in their
vaults to the paths of the new names in the same transaction (syncCollPhyPath,
syncDataObjPhyPath): a file left at the old path would be overwritten by the next object
created under the old name.
"""

from __future__ import annotations

from pathlib import Path

from .. import protocol as p
from ..catalog import AccessLevel, normalize, now, split
from ..errors import fail
from ..vault import renaming
from . import api
from .data_objects import try_lock
from .numbers import ApiNumber, OprType


class CollectionApi:
    @api(ApiNumber.COLL_CREATE_AN)
    def api_coll_create(self, msg):
        body = msg.xml()
        path = normalize(p.text(body, "collName"))
        kv = p.keyvals(body)
        recursive = "recursiveOpr" in kv
        self.validate_logical_path(path)
        with self.cat.transaction():
            kind = self.cat.kind(path)
            if kind == "data":
                raise fail("CAT_NAME_EXISTS_AS_DATAOBJ", path)
            if kind == "coll":
                if recursive:
                    return 0, b""
                raise fail("CAT_NAME_EXISTS_AS_COLLECTION", path)
            parent = split(path)[0]
            if self.cat.coll(parent) is None:
                if not recursive:
                    raise fail("CAT_UNKNOWN_COLLECTION", f"no parent collection {parent}")
                anc = parent
                while self.cat.coll(anc) is None:
                    anc = split(anc)[0]
                self.require(self.cat.coll(anc)["coll_id"], AccessLevel.MODIFY_OBJECT, anc)
                self.ensure_colls(path)
            else:
                self.require(self.cat.coll(parent)["coll_id"], AccessLevel.MODIFY_OBJECT, parent)
                self.cat.insert_coll(path, self.user, self.zone)
        return 0, b""

    @api(ApiNumber.RM_COLL_AN)
    def api_rm_coll(self, msg):
        body = msg.xml()
        path = normalize(p.text(body, "collName"))
        kv = p.keyvals(body)
        with renaming(self.cat) as moves:
            row = self.coll_or_fail(path)
            self.require(row["coll_id"], AccessLevel.OWN, path)
            if path.count("/") <= 3 and not self.is_admin():
                raise fail("SYS_NOT_ALLOWED", f"cannot remove {path}")
            if self.cat.has_children(row["coll_id"], path) and "recursiveOpr" not in kv:
                raise fail("CAT_COLLECTION_NOT_EMPTY", path)
            if "forceFlag" in kv or path.startswith(f"/{self.zone}/trash/"):
                files = self.cat.delete_tree(path)
            else:
                self.ensure_colls(split(target := self.trash_path(path))[0])
                self.cat.rename_collection(path, target)
                moves.sync(self.cat.placements_below(target))
                files = []
        for f in files:
            f.unlink(missing_ok=True)
        return 0, b""

    @api(ApiNumber.DATA_OBJ_RENAME_AN)
    def api_rename(self, msg):
        body = msg.xml()
        parts = body.findall("DataObjInp_PI")
        if len(parts) != 2:
            raise p.ProtocolError("rename needs source and destination")
        src_el, dst_el = parts
        src, dst = normalize(p.text(src_el, "objPath")), normalize(p.text(dst_el, "objPath"))
        opr = p.integer(src_el, "oprType")
        with renaming(self.cat) as moves:
            kind = self.cat.kind(src)
            if kind is None or (opr == OprType.RENAME_DATA_OBJ and kind != "data") or \
                    (opr == OprType.RENAME_COLL and kind != "coll"):
                raise fail("CAT_UNKNOWN_FILE" if opr != OprType.RENAME_COLL else "CAT_UNKNOWN_COLLECTION", src)
            existing = self.cat.kind(dst)
            if existing:
                raise fail("CAT_NAME_EXISTS_AS_DATAOBJ" if existing == "data" else "CAT_NAME_EXISTS_AS_COLLECTION",
                           dst)
            parent = self.coll_or_fail(split(dst)[0])
            self.require(parent["coll_id"], AccessLevel.MODIFY_OBJECT, parent["coll_name"])
            if kind == "coll":
                if dst.startswith(src + "/"):
                    raise fail("SYS_NOT_ALLOWED", "cannot move a collection into itself")
                self.require(self.cat.coll(src)["coll_id"], AccessLevel.OWN, src)
                self.cat.rename_collection(src, dst)
                moves.sync(self.cat.placements_below(dst))
            else:
                data_id = self.cat.replicas(src)[0]["data_id"]
                self.require(data_id, AccessLevel.OWN, src)
                self.cat.update_data_object(data_id, coll_id=parent["coll_id"], data_name=split(dst)[1],
                                            modify_ts=now())
                moves.sync(self.cat.placements(data_id))
        return 0, b""

    @api(ApiNumber.DATA_OBJ_UNLINK_AN)
    def api_unlink(self, msg):
        body, path, kv = self._open_request(msg)
        files = []
        with renaming(self.cat) as moves:
            reps = self.replicas_or_fail(path, AccessLevel.MODIFY_OBJECT)
            try_lock(reps)
            if "forceFlag" in kv or path.startswith(f"/{self.zone}/trash/"):
                files = [Path(r["data_path"]) for r in reps]
                self.cat.delete_data_object(reps[0]["data_id"])
            else:
                target = self.trash_path(path)
                self.ensure_colls(split(target)[0])
                coll = self.cat.coll(split(target)[0])
                self.cat.move_data_object(reps[0]["data_id"], coll["coll_id"], split(target)[1])
                moves.sync(self.cat.placements(reps[0]["data_id"]))   # rsMvDataObjToTrash renames, files too
        for f in files:
            f.unlink(missing_ok=True)
        return 0, b""
