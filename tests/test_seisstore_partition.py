"""Partitions: sublists of equal length +/- 1, and station pairs made exactly once."""
from __future__ import annotations

import datetime
import inspect
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seisstore.partition import (
    CorrelationJob,
    ProcessingJob,
    correlation_jobs,
    correlation_partition,
    job_count,
    partition,
    station_pairs,
    sublist_bounds,
    sublists,
)


@st.composite
def list_and_n(draw, max_size=60):
    items = draw(st.lists(st.integers(), min_size=1, max_size=max_size, unique=True))
    n = draw(st.integers(1, len(items)))
    return items, n


@given(list_and_n())
def test_sublists_concatenate_back_with_sizes_within_one(args):
    items, n = args
    parts = [sublists(items, n, i) for i in range(n)]
    assert [x for part in parts for x in part] == items
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= 1


@given(list_and_n())
def test_sublists_cut_like_numpy_array_split(args):
    items, n = args
    expected = [list(a) for a in np.array_split(np.array(items, dtype=object), n)]
    assert [sublists(items, n, i) for i in range(n)] == expected


def test_sublist_bounds_example():
    assert [sublist_bounds(10, 3, i) for i in range(3)] == [(0, 4), (4, 7), (7, 10)]


@pytest.mark.parametrize("items,n,index", [
    ([1, 2, 3], 0, 0),
    ([1, 2, 3], -1, 0),
    ([1, 2, 3], 4, 0),
    ([], 1, 0),
    ([1, 2, 3], 3, 3),
    ([1, 2, 3], 3, -1),
    ([1, 2, 3], 2.0, 0),
    ([1, 2, 3], True, 0),
])
def test_sublists_bad_input(items, n, index):
    with pytest.raises(ValueError):
        sublists(items, n, index)


def test_seed_example_160_by_8():
    dates = [datetime.date(2011, 1, 1) + datetime.timedelta(days=i) for i in range(365)]
    stations = [f"S{i}" for i in range(100)]
    jobs = list(partition(dates, stations, 160, 8))
    assert len(jobs) == 1280 == job_count(160, 8)
    assert jobs[:2] == [ProcessingJob(160, 0, 8, 0), ProcessingJob(160, 0, 8, 1)]
    assert jobs[8] == ProcessingJob(160, 1, 8, 0)
    assert jobs[1].name("traces") == "traces160_0_8_1"
    day_list, station_list = jobs[1].select(dates, stations)
    assert day_list == dates[:3] and station_list == stations[13:26]


def test_partition_is_a_generator_that_fails_early():
    assert inspect.isgenerator(partition([1, 2], ["a"], 2, 1))
    with pytest.raises(ValueError, match="cannot split 2 dates into 3"):
        partition([1, 2], ["a"], 3, 1)
    with pytest.raises(ValueError, match="duplicate station"):
        partition([1, 2], ["a", "a"], 1, 1)
    with pytest.raises(ValueError, match=">= 1"):
        partition([1, 2], ["a"], 1, 0)


@settings(max_examples=150)
@given(list_and_n(max_size=20), list_and_n(max_size=30))
def test_processing_campaign_covers_every_date_station_once(dates_n, stations_n):
    dates, nd = dates_n
    stations, ns = stations_n
    seen = Counter()
    for job in partition(dates, stations, nd, ns):
        day_list, station_list = job.select(dates, stations)
        seen.update((d, s) for d in day_list for s in station_list)
    assert seen == Counter({(d, s): 1 for d in dates for s in stations})


@given(st.integers(1, 30))
def test_correlation_jobs_enumerate_upper_triangle(n):
    jobs = list(correlation_jobs(n))
    assert len(jobs) == n * (n + 1) // 2 == len(set(jobs))
    assert all(0 <= i <= j < n for i, j in jobs)


@settings(max_examples=150)
@given(list_and_n(max_size=12), list_and_n(max_size=25))
def test_correlation_campaign_makes_every_pair_exactly_once(dates_n, stations_n):
    dates, nd = dates_n
    stations, ns = stations_n
    seen = Counter()
    jobs = list(correlation_partition(dates, stations, nd, ns))
    assert len(jobs) == job_count(nd, ns, "correlation")
    for job in jobs:
        day_list, pairs = job.select(dates, stations)
        pairs = list(pairs)
        assert all(a != b for a, b in pairs)
        seen.update((d, frozenset(p)) for d in day_list for p in pairs)
    expected = Counter(
        {(d, frozenset(p)): 1 for d in dates for p in combinations(stations, 2)})
    assert seen == expected


def test_station_pairs_kinds():
    stations = ["A", "B", "C", "D", "E"]
    assert list(station_pairs(stations, 2, 0, 0)) == [("A", "B"), ("A", "C"), ("B", "C")]
    assert list(station_pairs(stations, 2, 0, 1)) == [
        ("A", "D"), ("A", "E"), ("B", "D"), ("B", "E"), ("C", "D"), ("C", "E")]
    assert CorrelationJob(10, 3, 2, 0, 1).name("corr") == "corr10_3_2_0_1"


@pytest.mark.parametrize("args", [
    (["A", "B"], 2, 1, 0),
    (["A", "B"], 2, 0, 2),
    (["A", "B"], 3, 0, 0),
    (["A", "A"], 1, 0, 0),
])
def test_station_pairs_bad_input(args):
    with pytest.raises(ValueError):
        station_pairs(*args)


def test_bad_counts():
    with pytest.raises(ValueError):
        correlation_jobs(0)
    with pytest.raises(ValueError):
        job_count(1, 1, "stacking")
