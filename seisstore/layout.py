"""Where a day of seismic data lives inside a catalogue collection.

A layout is data, not code: one format string (the overridable ``FMTSTR``,
as in ObsPy's SDS client) gives three things, so they can never disagree:

* :meth:`Layout.path` -- the relative path of one day file from a :class:`Key`;
* :meth:`Layout.like` -- GenQuery ``LIKE`` patterns (SQL ``%`` wildcards) for
  a partial key, split into the collection part (for ``COLL_NAME``) and the
  data-object part (for ``DATA_NAME``);
* :meth:`Layout.parse` -- the :class:`Key` of a relative path, or ``None``
  when the path is not one of the layout's files.

Fields a format string may use:

========== ===================================================== ==========
field      value                                                 example
========== ===================================================== ==========
net        network code                                          ``FR``
sta        station code                                          ``OGDI``
loc        location code, may be empty                           ``00``
cha        channel code                                          ``HHZ``
typ        SDS data type (``D`` by default)                      ``D``
year       year (int)                                            ``2011``
doy        day of year (int), usually written ``{doy:03d}``      ``070``
julday     alias of ``doy``                                      ``070``
month      month (int), usually written ``{month:02d}``          ``03``
day        day of the month (int), usually ``{day:02d}``         ``11``
date       ``%Y%m%d``                                            ``20110311``
isodate    ``%Y-%m-%d``                                          ``2011-03-11``
========== ===================================================== ==========

Integer fields accept the format specs ``d`` and ``0Nd`` (zero padding); text fields
take no spec. Paths use ``/`` (iRODS paths are POSIX whatever the client OS).

GenQuery ``LIKE`` has no escape: ``_`` in a pattern matches any one character
and a ``%`` standing for one field may match across ``/``. The patterns are
therefore a cheap server-side superset; callers confirm every hit with
:meth:`Layout.parse`, which is exact.
"""
from __future__ import annotations

import datetime
import logging
import operator
import re
import string
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "CODE_RE",
    "Key",
    "Layout",
    "LikePattern",
    "PatternLayout",
    "SDSLayout",
    "SDS_FMTSTR",
    "WHISPER_FMTSTR",
    "get_layout",
]

log = logging.getLogger(__name__)

#: Network, station, channel and type codes: SEED codes are alphanumeric, and
#: refusing ``.``, ``/``, ``_``, ``%`` keeps paths, regexes and LIKE patterns
#: unambiguous.
CODE_RE = re.compile(r"[A-Za-z0-9]+")
_LOC_RE = re.compile(r"[A-Za-z0-9]*")

SDS_FMTSTR = (
    "{year}/{net}/{sta}/{cha}.{typ}/{net}.{sta}.{loc}.{cha}.{typ}.{year}.{doy:03d}"
)
#: The Whisper project's day files: one collection per day.
WHISPER_FMTSTR = "{date}/{net}.{sta}.{loc}.{cha}.mseed"


@dataclass(frozen=True, order=True)
class Key:
    """One channel-day: the unit a layout stores as one data object."""

    net: str
    sta: str
    loc: str
    cha: str
    day: datetime.date
    typ: str = "D"

    def __post_init__(self) -> None:
        for name in ("net", "sta", "cha", "typ"):
            value = getattr(self, name)
            if not isinstance(value, str) or not CODE_RE.fullmatch(value):
                raise ValueError(f"Key.{name} must be alphanumeric, got {value!r}")
        if not isinstance(self.loc, str) or not _LOC_RE.fullmatch(self.loc):
            raise ValueError(f"Key.loc must be alphanumeric or empty, got {self.loc!r}")
        if isinstance(self.day, datetime.datetime) or not isinstance(self.day, datetime.date):
            raise ValueError(f"Key.day must be a datetime.date, got {self.day!r}")

    @property
    def seed_id(self) -> str:
        """``NET.STA.LOC.CHA``, the id ObsPy's ``Stream.select`` understands."""
        return f"{self.net}.{self.sta}.{self.loc}.{self.cha}"


_UNSEEN = object()
#: Distinct date-text tuples whose day a layout remembers (a few per day of data).
_DAY_CACHE_MAX = 100_000


def _trusted_key(net: str, sta: str, loc: str, cha: str, day: datetime.date, typ: str) -> Key:
    """A :class:`Key` from fields already known valid (skips ``__post_init__``)."""
    key = object.__new__(Key)
    key.__dict__.update(net=net, sta=sta, loc=loc, cha=cha, day=day, typ=typ)
    return key


class LikePattern(NamedTuple):
    """GenQuery ``LIKE`` operands: ``COLL_NAME LIKE collection``, ``DATA_NAME LIKE data_name``."""

    collection: str
    data_name: str


_TEXT_FIELDS = {"net", "sta", "loc", "cha", "typ"}
_INT_FIELDS = {"year", "doy", "julday", "month", "day"}
_DATE_FIELDS = {"date", "isodate"}
_FIELDS = _TEXT_FIELDS | _INT_FIELDS | _DATE_FIELDS
_INT_SPEC_RE = re.compile(r"(0[1-9])?d?")
_FIELD_REGEX = {
    "net": r"[A-Za-z0-9]+",
    "sta": r"[A-Za-z0-9]+",
    "cha": r"[A-Za-z0-9]+",
    "typ": r"[A-Za-z0-9]+",
    "loc": r"[A-Za-z0-9]*",
    "date": r"[0-9]{8}",
    "isodate": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
}


class _Piece(NamedTuple):
    literal: str
    field: str | None
    spec: str


def _split_fmtstr(fmtstr: str) -> list[_Piece]:
    """Parse and validate a format string once, so errors come at construction."""
    if not isinstance(fmtstr, str) or not fmtstr:
        raise ValueError("a layout format string must be a non-empty string")
    try:
        parsed = list(string.Formatter().parse(fmtstr))
    except ValueError as exc:
        raise ValueError(f"bad layout format string {fmtstr!r}: {exc}") from exc
    pieces = []
    for literal, field, spec, conversion in parsed:
        if "%" in literal or "\\" in literal:
            raise ValueError(f"layout {fmtstr!r}: literal text may not contain '%' or '\\'")
        if field is not None:
            if conversion:
                raise ValueError(f"layout {fmtstr!r}: conversions like !r are not supported")
            if field not in _FIELDS:
                raise ValueError(
                    f"layout {fmtstr!r}: unknown field {{{field}}}; known: {sorted(_FIELDS)}"
                )
            if field in _INT_FIELDS:
                if not _INT_SPEC_RE.fullmatch(spec or ""):
                    raise ValueError(f"layout {fmtstr!r}: unsupported spec {{{field}:{spec}}}")
            elif spec:
                raise ValueError(f"layout {fmtstr!r}: field {{{field}}} takes no format spec")
        pieces.append(_Piece(literal, field, spec or ""))
    if fmtstr.startswith("/") or fmtstr.endswith("/") or "//" in fmtstr:
        raise ValueError(f"layout {fmtstr!r}: must be relative, without empty path parts")
    if any(part in (".", "..") for part in fmtstr.split("/")):
        raise ValueError(f"layout {fmtstr!r}: '.' and '..' are not path parts")
    fields = {p.field for p in pieces if p.field}
    missing = {"net", "sta", "loc", "cha"} - fields
    if missing:
        raise ValueError(f"layout {fmtstr!r}: must contain {{{'}, {'.join(sorted(missing))}}}")
    has_date = (
        fields & _DATE_FIELDS
        or {"year", "month", "day"} <= fields
        or ("year" in fields and fields & {"doy", "julday"})
    )
    if not has_date:
        raise ValueError(
            f"layout {fmtstr!r}: the day cannot be recovered; use {{date}}, {{isodate}}, "
            "{year}+{doy} or {year}+{month}+{day}"
        )
    return pieces


def _values(key: Key) -> dict[str, object]:
    day = key.day
    doy = day.timetuple().tm_yday
    return {
        "net": key.net,
        "sta": key.sta,
        "loc": key.loc,
        "cha": key.cha,
        "typ": key.typ,
        "year": day.year,
        "doy": doy,
        "julday": doy,
        "month": day.month,
        "day": day.day,
        "date": f"{day.year:04d}{day.month:02d}{day.day:02d}",
        "isodate": day.isoformat(),
    }


class Layout:
    """A catalogue layout given by one format string, ``FMTSTR`` unless overridden."""

    FMTSTR: str = SDS_FMTSTR

    def __init__(self, fmtstr: str | None = None) -> None:
        self.fmtstr = self.FMTSTR if fmtstr is None else fmtstr
        self._pieces = _split_fmtstr(self.fmtstr)
        self._fields = {p.field for p in self._pieces if p.field}
        # The last '/' of the format string lives in a literal (fields cannot
        # contain '/'), so the collection and data-name parts split there.
        self._split_at = self.fmtstr.rfind("/")
        self._regex, self._groups = self._compile()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fmtstr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and other.fmtstr == self.fmtstr

    def __hash__(self) -> int:
        return hash(self.fmtstr)

    def _compile(self) -> tuple[re.Pattern[str], list[str]]:
        # One uniquely named group per occurrence; repeated fields (the SDS
        # year, net, sta...) are reconciled in parse().
        parts, groups, specs = [], [], []
        for literal, field, spec in self._pieces:
            parts.append(re.escape(literal))
            if field is not None:
                groups.append(field)
                specs.append(spec)
                pattern = _FIELD_REGEX.get(field, r"[0-9]+")
                parts.append(f"(?P<g{len(groups) - 1}>{pattern})")
        # What parse() needs, precomputed once: the group of each Key text
        # field, pairs of groups that must hold the same text, and the groups
        # (with their specs) that say the day.
        first: dict[str, int] = {}
        repeats = []
        for i, field in enumerate(groups):
            if field in _TEXT_FIELDS:
                if field in first:
                    repeats.append((first[field], i))
                else:
                    first[field] = i
        self._text_groups = tuple(first.get(f) for f in ("net", "sta", "loc", "cha", "typ"))
        self._repeats = tuple(repeats)
        date_groups = [i for i, f in enumerate(groups) if f not in _TEXT_FIELDS]
        self._date_specs = tuple((groups[i], specs[i]) for i in date_groups)
        self._date_texts = operator.itemgetter(*date_groups)
        self._day_cache: dict[object, datetime.date | None] = {}
        return re.compile("".join(parts)), groups

    def path(self, key: Key) -> str:
        """Relative path (``/``-separated) of ``key``'s day file."""
        return self.fmtstr.format(**_values(key))

    def like(
        self,
        *,
        net: str | None = None,
        sta: str | None = None,
        loc: str | None = None,
        cha: str | None = None,
        day: datetime.date | None = None,
        typ: str | None = None,
        root: str = "",
    ) -> LikePattern:
        """GenQuery ``LIKE`` operands for the files matching the given fields.

        ``None`` means any value; ``loc=""`` means the empty location code.
        With ``root`` the collection pattern is absolute (``root/...``);
        a layout without subcollections then gives ``root`` itself.
        The result is a superset; confirm hits with :meth:`parse`.
        """
        given: dict[str, object] = {}
        for name, value in (("net", net), ("sta", sta), ("cha", cha), ("typ", typ)):
            if value is not None:
                if not CODE_RE.fullmatch(value):
                    raise ValueError(f"{name} must be alphanumeric, got {value!r}")
                given[name] = value
        if loc is not None:
            if not _LOC_RE.fullmatch(loc):
                raise ValueError(f"loc must be alphanumeric or empty, got {loc!r}")
            given["loc"] = loc
        if day is not None:
            values = _values(Key("X", "X", "", "X", day))
            given.update({k: values[k] for k in _INT_FIELDS | _DATE_FIELDS})
        out = []
        for literal, field, spec in self._pieces:
            out.append(literal)
            if field is None:
                continue
            if field in given:
                out.append(format(given[field], spec))
            else:
                out.append("%")
        pattern = re.sub("%%+", "%", "".join(out))
        cut = pattern.rfind("/")
        coll, data = (pattern[:cut], pattern[cut + 1:]) if cut >= 0 else ("", pattern)
        root = root.rstrip("/")
        if root:
            coll = f"{root}/{coll}" if coll else root
        return LikePattern(coll, data)

    def parse(self, relpath: str) -> Key | None:
        """The :class:`Key` whose path is exactly ``relpath``, else ``None``.

        Exact: repeated fields must agree, and every date field must be the
        canonical text (zero padding included) of the one day they describe,
        so ``parse(p)`` is a key iff ``path(parse(p)) == p``. The day of each
        distinct tuple of date texts is computed once and cached.
        """
        match = self._regex.fullmatch(relpath)
        if match is None:
            return None
        g = match.groups()
        for i, j in self._repeats:
            if g[i] != g[j]:
                return None
        texts = self._date_texts(g)
        day = self._day_cache.get(texts, _UNSEEN)
        if day is _UNSEEN:
            day = self._day_of(texts)
            if len(self._day_cache) >= _DAY_CACHE_MAX:
                self._day_cache.clear()
            self._day_cache[texts] = day
        if not isinstance(day, datetime.date):
            return None
        net, sta, loc, cha, typ = self._text_groups
        # The regex groups are exactly CODE_RE / _LOC_RE, so Key's checks hold.
        return _trusted_key(g[net], g[sta], g[loc], g[cha], day, "D" if typ is None else g[typ])  # type: ignore[index]

    def _day_of(self, texts) -> datetime.date | None:
        """The day the date groups' texts describe, if they are its canonical texts."""
        if len(self._date_specs) == 1:
            texts = (texts,)
        fields: dict[str, str] = {}
        for (field, _), text in zip(self._date_specs, texts):
            fields.setdefault(field, text)
        try:
            day = self._day(fields)
        except (ValueError, OverflowError):
            return None
        values = _values(_trusted_key("X", "X", "", "X", day, "D"))
        for (field, spec), text in zip(self._date_specs, texts):
            if format(values[field], spec) != text:
                return None
        return day

    def parse_object(self, root: str, collection: str, data_name: str) -> Key | None:
        """Parse a GenQuery row (``COLL_NAME``, ``DATA_NAME``) under ``root``."""
        root = root.rstrip("/")
        if collection == root:
            rel = data_name
        elif collection.startswith(root + "/"):
            rel = f"{collection[len(root) + 1:]}/{data_name}"
        else:
            return None
        return self.parse(rel)

    def _day(self, fields: dict[str, str]) -> datetime.date:
        if "date" in fields:
            text = fields["date"]
            return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if "isodate" in fields:
            return datetime.date.fromisoformat(fields["isodate"])
        year = int(fields["year"])
        doy = fields.get("doy", fields.get("julday"))
        if doy is not None:
            n = int(doy)
            if not 1 <= n <= 366:
                raise ValueError(f"day of year {n} out of range")
            day = datetime.date(year, 1, 1) + datetime.timedelta(days=n - 1)
            if day.year != year:
                raise ValueError(f"day of year {n} out of range for {year}")
            return day
        return datetime.date(year, int(fields["month"]), int(fields["day"]))


class SDSLayout(Layout):
    """SeisComP Data Structure, as written by ``slarchive`` and read by ObsPy."""

    FMTSTR = SDS_FMTSTR


class PatternLayout(Layout):
    """A user's own format string, e.g. :data:`WHISPER_FMTSTR`."""

    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)


def get_layout(spec: str) -> Layout:
    """The layout a CLI option names: ``sds``, ``whisper`` or a format string."""
    lowered = spec.strip().lower()
    if lowered == "sds":
        return SDSLayout()
    if lowered == "whisper":
        return PatternLayout(WHISPER_FMTSTR)
    return PatternLayout(spec)
