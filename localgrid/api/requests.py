"""The request most data-object APIs send: DataObjInp_PI (a path, flags, a size and keywords)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from .. import protocol as p
from ..catalog import normalize

RESC_HIER_KW = "resc_hier"   # RESC_HIER_STR_KW (rodsKeyWdDef.h): a replica named by its full hierarchy
SIZE_KW = " dataSize"   # the size an open declares (DataObjInp_PI's dataSize), kept beside its keywords


def open_request(msg: p.Message) -> tuple[Element, str, dict[str, str]]:
    """The body, the normalized logical path and the keywords (with the declared size under SIZE_KW)."""
    body = msg.xml()
    return body, normalize(p.text(body, "objPath")), p.keyvals(body) | {SIZE_KW: p.text(body, "dataSize")}
