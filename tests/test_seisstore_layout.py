"""Layouts: paths, LIKE patterns and parsing all come from one format string."""
from __future__ import annotations

import datetime
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seisstore.layout import (
    WHISPER_FMTSTR,
    Key,
    Layout,
    LikePattern,
    PatternLayout,
    SDSLayout,
    get_layout,
)

codes = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abz", min_size=1, max_size=5)
locs = st.text("0123456789AB", min_size=0, max_size=2)
days = st.dates(min_value=datetime.date(1, 1, 1), max_value=datetime.date(9999, 12, 31))
keys = st.builds(Key, codes, codes, locs, codes, days, codes)
keys_d = st.builds(Key, codes, codes, locs, codes, days)

PATTERNS = [
    WHISPER_FMTSTR,
    "{isodate}/{net}/{net}.{sta}.{loc}.{cha}.mseed",
    "{year}/{month:02d}/{day:02d}/{net}_{sta}_{loc}_{cha}.sac",
    "{net}/{sta}/{year}.{julday:03d}.{net}.{sta}.{loc}.{cha}",
    "{year}-{doy}-{net}.{sta}.{loc}.{cha}",  # no collection part, unpadded doy
]

OGDI = Key("FR", "OGDI", "", "HHZ", datetime.date(2011, 3, 11))


def like_to_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE semantics: % is any run, _ is any one character."""
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def test_sds_path_matches_obspy_layout():
    assert SDSLayout().path(OGDI) == "2011/FR/OGDI/HHZ.D/FR.OGDI..HHZ.D.2011.070"


def test_whisper_path_uses_compact_date():
    layout = PatternLayout(WHISPER_FMTSTR)
    assert layout.path(OGDI) == "20110311/FR.OGDI..HHZ.mseed"
    assert layout.parse("20110311/FR.OGDI..HHZ.mseed") == OGDI


def test_fmtstr_is_overridable_in_a_subclass():
    class Flat(Layout):
        FMTSTR = "{net}.{sta}.{loc}.{cha}.{date}"

    assert Flat().path(OGDI) == "FR.OGDI..HHZ.20110311"
    assert Flat() == PatternLayout("{net}.{sta}.{loc}.{cha}.{date}")


@settings(max_examples=300)
@given(keys)
def test_sds_round_trip(key):
    layout = SDSLayout()
    assert layout.parse(layout.path(key)) == key


@settings(max_examples=200)
@given(keys_d, st.sampled_from(PATTERNS))
def test_pattern_round_trip(key, pattern):
    layout = PatternLayout(pattern)
    assert layout.parse(layout.path(key)) == key


@settings(max_examples=200)
@given(keys, st.sampled_from(PATTERNS + [None]), st.data())
def test_like_patterns_match_the_keys_they_describe(key, pattern, data):
    layout = SDSLayout() if pattern is None else PatternLayout(pattern)
    fixed = data.draw(st.sets(st.sampled_from(["net", "sta", "loc", "cha", "day", "typ"])))
    like = layout.like(root="/zone/home/u/data", **{f: getattr(key, f) for f in fixed})
    assert isinstance(like, LikePattern)
    assert "%%" not in like.collection and "%%" not in like.data_name
    path = f"/zone/home/u/data/{layout.path(key)}"
    collection, data_name = path.rsplit("/", 1)
    assert like_to_regex(like.collection).fullmatch(collection)
    assert like_to_regex(like.data_name).fullmatch(data_name)


@given(keys_d, keys_d)
def test_like_rejects_other_stations(key, other):
    layout = PatternLayout(WHISPER_FMTSTR)
    like = layout.like(net=key.net, sta=key.sta, loc=key.loc, cha=key.cha, day=key.day)
    collection, data_name = layout.path(other).rsplit("/", 1)
    same = (key.net, key.sta, key.loc, key.cha, key.day) == (
        other.net, other.sta, other.loc, other.cha, other.day)
    matches = bool(like_to_regex(like.collection).fullmatch(collection)) and bool(
        like_to_regex(like.data_name).fullmatch(data_name))
    assert matches == same


def test_like_examples():
    sds = SDSLayout()
    assert sds.like(sta="OGDI", day=datetime.date(2011, 3, 11), root="/z/sds/") == (
        "/z/sds/2011/%/OGDI/%.%", "%.OGDI.%.%.%.2011.070")
    assert sds.like() == ("%/%/%/%.%", "%.%.%.%.%.%.%")
    whisper = get_layout("whisper")
    assert whisper.like(net="FR", loc="") == ("%", "FR.%..%.mseed")
    flat = PatternLayout("{net}.{sta}.{loc}.{cha}.{date}")
    assert flat.like(net="FR", root="/z/flat") == ("/z/flat", "FR.%.%.%.%")


def test_parse_object_strips_root():
    layout = get_layout("sds")
    root = "/zone/home/u/sds"
    assert layout.parse_object(root, f"{root}/2011/FR/OGDI/HHZ.D",
                               "FR.OGDI..HHZ.D.2011.070") == OGDI
    assert layout.parse_object(root, "/zone/home/u/other/2011/FR/OGDI/HHZ.D",
                               "FR.OGDI..HHZ.D.2011.070") is None
    flat = PatternLayout("{net}.{sta}.{loc}.{cha}.{date}")
    assert flat.parse_object("/z/", "/z", "FR.OGDI..HHZ.20110311") == OGDI


@pytest.mark.parametrize("path", [
    "2011/FR/OGDI/HHZ.D/FR.OGDI..HHZ.D.2011.70",        # unpadded doy
    "2011/FR/OGDI/HHZ.D/FR.OGDI..HHZ.D.2012.070",       # two different years
    "2011/FR/OGDI/HHZ.D/FR.OGDX..HHZ.D.2011.070",       # two different stations
    "2011/FR/OGDI/HHZ.D/FR.OGDI..HHZ.D.2011.366",       # 2011 has 365 days
    "2011/FR/OGDI/HHZ.D/FR.OGDI..HHZ.D.2011.000",
    "2011/FR/OGDI/HHZ.D/FR.OGDI..HHZ.D.2011.070.tmp",   # half-written
    "x/2011/FR/OGDI/HHZ.D/FR.OGDI..HHZ.D.2011.070",
    "2011/FR/OGDI/HHZ.D/FR.OGDI.HHZ.D.2011.070",        # missing loc separator
    "2011/FR/OG_DI/HHZ.D/FR.OG_DI..HHZ.D.2011.070",
    "",
])
def test_sds_parse_rejects(path):
    assert SDSLayout().parse(path) is None


@pytest.mark.parametrize("path", [
    "20110230/FR.OGDI..HHZ.mseed",   # no 30 February
    "2011031/FR.OGDI..HHZ.mseed",
    "20110311/FR.OGDI..HHZ.sac",
    "20110311/FR.OGDI.HHZ.mseed",
    "20110311/sub/FR.OGDI..HHZ.mseed",
])
def test_whisper_parse_rejects(path):
    assert PatternLayout(WHISPER_FMTSTR).parse(path) is None


def test_empty_location_round_trips_everywhere():
    for pattern in PATTERNS:
        layout = PatternLayout(pattern)
        assert layout.parse(layout.path(OGDI)).loc == ""


def test_isodate_and_julday():
    layout = PatternLayout("{isodate}/{julday:03d}/{net}.{sta}.{loc}.{cha}")
    assert layout.path(OGDI) == "2011-03-11/070/FR.OGDI..HHZ"
    assert layout.parse("2011-03-11/071/FR.OGDI..HHZ") is None  # inconsistent


@pytest.mark.parametrize("pattern", [
    "",
    "{net}.{sta}.{cha}.{date}",                    # no loc
    "{net}.{sta}.{loc}.{cha}",                     # no day
    "{year}/{net}.{sta}.{loc}.{cha}",              # year alone is not a day
    "{date}/{net}.{sta}.{loc}.{cha}.{station}",    # unknown field
    "{date}/{net:>5}.{sta}.{loc}.{cha}",           # spec on a text field
    "{date}/{net}.{sta}.{loc}.{cha}.{doy:x}",      # unsupported int spec
    "{date}/{net}.{sta}.{loc}.{cha}.{doy:3}",      # space padding
    "/{date}/{net}.{sta}.{loc}.{cha}",             # absolute
    "{date}//{net}.{sta}.{loc}.{cha}",
    "../{date}/{net}.{sta}.{loc}.{cha}",
    "{date}/{net}.{sta}.{loc}.{cha}%",
    "{date}/{net!r}.{sta}.{loc}.{cha}",
    "{date}/{net}.{sta}.{loc}.{cha",
])
def test_bad_patterns_fail_at_construction(pattern):
    with pytest.raises(ValueError):
        PatternLayout(pattern)


@pytest.mark.parametrize("kwargs", [
    dict(net="F.R"), dict(sta=""), dict(loc="0/"), dict(cha="%"), dict(typ="D_"),
])
def test_bad_keys_and_like_fields(kwargs):
    fields = dict(net="FR", sta="OGDI", loc="", cha="HHZ", typ="D")
    fields.update(kwargs)
    with pytest.raises(ValueError):
        Key(day=datetime.date(2011, 3, 11), **fields)
    with pytest.raises(ValueError):
        SDSLayout().like(**kwargs)


def test_key_day_must_be_a_date():
    with pytest.raises(ValueError):
        Key("FR", "OGDI", "", "HHZ", datetime.datetime(2011, 3, 11))
    assert OGDI.seed_id == "FR.OGDI..HHZ"


fragments = st.text("0123456789ABZaz-", min_size=0, max_size=5)


@settings(max_examples=300)
@given(key=keys, pattern=st.sampled_from([SDSLayout.FMTSTR, *PATTERNS]), data=st.data())
def test_parse_is_exact_on_near_misses(key, pattern, data):
    """Replacing any one field's text: parse gives a key only if the path is that key's own path."""
    layout = PatternLayout(pattern)
    if "{typ}" not in pattern:  # without the field, typ is always "D"
        key = Key(key.net, key.sta, key.loc, key.cha, key.day)
    path = layout.path(key)
    match = layout._regex.fullmatch(path)
    i = data.draw(st.integers(0, len(match.groups()) - 1))
    new = path[:match.start(i + 1)] + data.draw(fragments) + path[match.end(i + 1):]
    got = layout.parse(new)
    assert got is None or layout.path(got) == new
    # the parse cache never changes an answer
    assert layout.parse(new) == got and layout.parse(path) == key
