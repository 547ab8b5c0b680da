"""The iRODS wire protocol as the server speaks it (irodsProt 1, XML packing).

A message is a 4-byte big-endian header length, a ``MsgHeader_PI`` XML header, then
three byte sections whose sizes the header gives: the packed message, an error
stack and a byte stream (file data).  The limits below are where a real agent gives up
too: a header longer than this is garbage, not a client.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Iterable

MAX_HEADER = 1088            # MAX_SZ_FOR_HEADER in the server's rodsDef.h
MAX_MESSAGE = 16 * 1024 ** 2  # packed XML bodies are small; 16 MiB leaves room for big GenQuery inputs
MAX_STREAM = 160 * 1024 ** 2  # a DATA_OBJ_WRITE chunk; PRC sends 8 MiB, iput at most 32 MiB


class ProtocolError(Exception):
    """The peer sent something that is not an iRODS message: the connection is dropped."""


class PeerClosed(Exception):
    """The peer went away between or inside messages."""


@dataclass
class Message:
    type: str
    int_info: int = 0
    body: bytes = b""
    error: bytes = b""
    bs: bytes | memoryview = b""

    def xml(self) -> ET.Element:
        if not self.body:
            raise ProtocolError("message has no body")
        return parse_xml(self.body.rstrip(b"\0"))


# Characters XML 1.0 forbids (or normalizes, as \r) but the server's packStruct parser passes
# through verbatim: PRC's QUASI_XML mode sends them raw inside names and AVUs.
_ODD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\r\ufffe\uffff]")
_STANDIN = 0x10_0000          # a plane-16 private-use code point stands in while parsing


def parse_xml(raw: bytes) -> ET.Element:
    """Parse a packed body as the server does: strict XML first, then tolerating odd characters."""
    try:
        return ET.fromstring(raw)
    except ET.ParseError as first:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"unparsable body: {first}") from first
        if not _ODD_CHARS.search(text):
            raise ProtocolError(f"unparsable body: {first}") from first
        try:
            root = ET.fromstring(_ODD_CHARS.sub(lambda m: chr(_STANDIN + ord(m.group())), text))
        except ET.ParseError as exc:
            raise ProtocolError(f"unparsable body: {exc}") from exc
        back = re.compile("[\U00100000-\U0010FFFF]")
        for el in root.iter():
            if el.text:
                el.text = back.sub(lambda m: chr(ord(m.group()) - _STANDIN), el.text)
        return root


def recv_exact(sock: socket.socket, size: int, into: bytearray | None = None) -> bytes | memoryview:
    """Read exactly ``size`` bytes or raise PeerClosed; never spins on a closed socket."""
    buf = into if into is not None and len(into) >= size else bytearray(size)
    view = memoryview(buf)[:size]
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise PeerClosed(f"peer closed after {got} of {size} bytes")
        got += n
    return view if into is not None else bytes(buf)


def read_message(sock: socket.socket, stream_buffer=None) -> Message:
    """Read one message; the byte stream goes into ``stream_buffer`` when one is given: a
    bytearray (grown as needed), or a callable ``size -> writable buffer`` asked only when
    the message carries a stream (so a connection that moves no bytes holds no buffer)."""
    (hlen,) = struct.unpack(">i", recv_exact(sock, 4))
    if hlen <= 0 or hlen > MAX_HEADER:
        raise ProtocolError(f"absurd header length {hlen}")
    header = recv_exact(sock, hlen)
    try:
        root = ET.fromstring(header)
        mtype = root.findtext("type") or ""
        msg_len = int(root.findtext("msgLen") or 0)
        err_len = int(root.findtext("errorLen") or 0)
        bs_len = int(root.findtext("bsLen") or 0)
        int_info = int(root.findtext("intInfo") or 0)
    except (ET.ParseError, ValueError) as exc:
        raise ProtocolError(f"bad header: {exc}") from exc
    if root.tag != "MsgHeader_PI" or not 0 <= msg_len <= MAX_MESSAGE or not 0 <= err_len <= MAX_MESSAGE \
            or not 0 <= bs_len <= MAX_STREAM:
        raise ProtocolError("header sizes out of range")
    body = recv_exact(sock, msg_len) if msg_len else b""
    error = recv_exact(sock, err_len) if err_len else b""
    if bs_len and callable(stream_buffer):
        bs = recv_exact(sock, bs_len, into=stream_buffer(bs_len))
    elif bs_len and stream_buffer is not None:
        if len(stream_buffer) < bs_len:
            stream_buffer.extend(bytes(bs_len - len(stream_buffer)))
        bs = recv_exact(sock, bs_len, into=stream_buffer)
    else:
        bs = recv_exact(sock, bs_len) if bs_len else b""
    return Message(mtype, int_info, body, error, bs)


def header(mtype: str, msg_len: int, err_len: int, bs_len: int, int_info: int) -> bytes:
    text = (f"<MsgHeader_PI><type>{mtype}</type><msgLen>{msg_len}</msgLen><errorLen>{err_len}</errorLen>"
            f"<bsLen>{bs_len}</bsLen><intInfo>{int_info}</intInfo></MsgHeader_PI>").encode()
    return struct.pack(">i", len(text)) + text


def frame(mtype: str, int_info: int = 0, body: bytes = b"", error: bytes = b"", bs_len: int = 0) -> bytes:
    """Header plus body and error; a byte stream, if any, is sent after it by the caller."""
    return header(mtype, len(body), len(error), bs_len, int_info) + body + error


# ---------------------------------------------------------------- packing -------

def _escape(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


class Bin(bytes):
    """A ``bin`` field of a packing instruction: base64 on the wire."""


def pack(name: str, fields: Iterable[tuple[str, Any]]) -> bytes:
    """Pack ``<name>`` with children in order; values may be str, int, Bin, nested bytes or lists."""
    return f"<{name}>".encode() + b"".join(_pack_field(k, v) for k, v in fields) + f"</{name}>".encode()


def _pack_field(tag: str, value: Any) -> bytes:
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):   # GenQuery columns: one encode for the lot
            return "".join([f"<{tag}>{_escape(v)}</{tag}>" for v in value]).encode()
        return b"".join(_pack_field(tag, v) for v in value)
    if isinstance(value, Bin):
        return f"<{tag}>{base64.b64encode(value).decode()}</{tag}>".encode()
    if isinstance(value, bytes):  # an already packed sub-structure
        return value
    return f"<{tag}>{_escape(str(value))}</{tag}>".encode()


def pack_error(code: int, text: str) -> bytes:
    return pack("RError_PI", [("count", 1), ("RErrMsg_PI", pack("RErrMsg_PI", [("status", code), ("msg", text)]))])


def pack_json(obj: Any) -> bytes:
    """BinBytesBuf_PI carrying JSON, as 4.2.9+ servers answer the JSON APIs."""
    raw = json.dumps(obj).encode()
    return pack("BinBytesBuf_PI", [("buflen", len(raw)), ("buf", Bin(raw))])


def pack_str(text: str) -> bytes:
    return pack("STR_PI", [("myStr", text)])


# ---------------------------------------------------------------- parsing -------

def text(el: ET.Element, tag: str, default: str = "") -> str:
    found = el.find(tag)
    return default if found is None or found.text is None else found.text


def integer(el: ET.Element, tag: str, default: int = 0) -> int:
    value = text(el, tag, "")
    try:
        return int(float(value)) if value else default
    except ValueError as exc:
        raise ProtocolError(f"{tag} is not a number: {value!r}") from exc


def keyvals(el: ET.Element | None) -> dict[str, str]:
    """A KeyValPair_PI as a dict; keywords without value map to ''."""
    if el is None:
        return {}
    kv = el if el.tag == "KeyValPair_PI" else el.find("KeyValPair_PI")
    if kv is None:
        return {}
    keys = [k.text or "" for k in kv.findall("keyWord")]
    vals = [v.text or "" for v in kv.findall("svalue")]
    return dict(zip(keys, vals))


def json_request(el: ET.Element) -> dict[str, Any]:
    """Decode a BinBytesBuf_PI (base64) or BytesBuf_PI (text) JSON request."""
    buf = text(el, "buf")
    raw = base64.b64decode(buf) if el.tag == "BinBytesBuf_PI" else buf.encode()
    try:
        data = json.loads(raw.rstrip(b"\0").decode() or "{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad JSON request: {exc}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("JSON request is not an object")
    return data
