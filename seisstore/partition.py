"""How a campaign cuts dates and stations into grid jobs.

The Whisper campaigns (seed paper, section 4) split the dates into
``n_dates`` contiguous sublists and the stations into ``n_stations``
contiguous sublists of equal length +/- 1, and run one job per pair of
sublist indices. A job line such as ``traces160_0_8_1 160 0 8 1`` carries
only the four integers: every job recomputes its sublists from the same
ordered inputs with :func:`sublists`, so nothing else travels to the node.

Correlations need station *pairs*. A correlation job takes one date sublist
and either one station sublist (all pairs inside it, ``i == j``) or two
disjoint sublists (all cross pairs, ``i < j``). :func:`correlation_jobs`
lists the ``(i, j)`` so that a whole campaign makes every unordered pair of
distinct stations exactly once per date. Transfers grow with the number of
station sublists, so keep ``n_stations`` small and ``n_dates`` large.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Hashable, Iterator, Sequence
from typing import NamedTuple, TypeVar

__all__ = [
    "CorrelationJob",
    "ProcessingJob",
    "correlation_jobs",
    "correlation_partition",
    "job_count",
    "partition",
    "station_pairs",
    "sublist_bounds",
    "sublists",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)


def _check_n(n: int, length: int, what: str = "items") -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"number of sublists must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"number of sublists must be >= 1, got {n}")
    if n > length:
        raise ValueError(f"cannot split {length} {what} into {n} non-empty sublists")


def _check_index(index: int, n: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"sublist index must be an int, got {index!r}")
    if not 0 <= index < n:
        raise ValueError(f"sublist index {index} out of range 0..{n - 1}")


def _check_unique(items: Sequence[H], what: str) -> None:
    if len(set(items)) != len(items):
        counts: dict[H, int] = {}
        for item in items:
            counts[item] = counts.get(item, 0) + 1
        dup = next(item for item, count in counts.items() if count > 1)
        raise ValueError(f"duplicate {what} {dup!r}: each would be processed twice")


def sublist_bounds(length: int, n: int, index: int) -> tuple[int, int]:
    """``(start, stop)`` of sublist ``index`` of ``n``, as :func:`numpy.array_split` cuts."""
    _check_n(n, length)
    _check_index(index, n)
    size, extra = divmod(length, n)
    start = index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


def sublists(items: Sequence[T], n: int, index: int) -> list[T]:
    """Sublist ``index`` of ``items`` cut into ``n`` contiguous parts of equal length +/- 1.

    The first ``len(items) % n`` parts are one longer, like ``numpy.array_split``.
    """
    start, stop = sublist_bounds(len(items), n, index)
    return list(items[start:stop])


class ProcessingJob(NamedTuple):
    """One processing job: date sublist ``idate`` x station sublist ``istation``."""

    n_dates: int
    idate: int
    n_stations: int
    istation: int

    def name(self, prefix: str) -> str:
        """The seed's job name, ``<prefix><n_dates>_<idate>_<n_stations>_<istation>``."""
        return f"{prefix}{self.n_dates}_{self.idate}_{self.n_stations}_{self.istation}"

    def select(
        self, dates: Sequence[T], stations: Sequence[H]
    ) -> tuple[list[T], list[H]]:
        """The dates and stations this job processes."""
        return (
            sublists(dates, self.n_dates, self.idate),
            sublists(stations, self.n_stations, self.istation),
        )


class CorrelationJob(NamedTuple):
    """One correlation job: date sublist ``idate`` x station sublists ``(istation, jstation)``."""

    n_dates: int
    idate: int
    n_stations: int
    istation: int
    jstation: int

    def name(self, prefix: str) -> str:
        """``<prefix><n_dates>_<idate>_<n_stations>_<istation>_<jstation>``."""
        return (
            f"{prefix}{self.n_dates}_{self.idate}_{self.n_stations}"
            f"_{self.istation}_{self.jstation}"
        )

    def select(
        self, dates: Sequence[T], stations: Sequence[H]
    ) -> tuple[list[T], Iterator[tuple[H, H]]]:
        """The dates and the station pairs this job correlates."""
        return (
            sublists(dates, self.n_dates, self.idate),
            station_pairs(stations, self.n_stations, self.istation, self.jstation),
        )


def partition(
    dates: Sequence[H],
    stations: Sequence[H],
    n_date_lists: int,
    n_station_lists: int,
) -> Iterator[ProcessingJob]:
    """Every processing job of a campaign, date-major as in the seed's ``param.txt``.

    Checks the inputs before yielding anything, so a bad campaign fails at once.
    """
    _check_n(n_date_lists, len(dates), "dates")
    _check_n(n_station_lists, len(stations), "stations")
    _check_unique(dates, "date")
    _check_unique(stations, "station")
    return _processing_jobs(n_date_lists, n_station_lists)


def _processing_jobs(n_dates: int, n_stations: int) -> Iterator[ProcessingJob]:
    for idate in range(n_dates):
        for istation in range(n_stations):
            yield ProcessingJob(n_dates, idate, n_stations, istation)


def correlation_jobs(n_station_lists: int) -> Iterator[tuple[int, int]]:
    """``(i, j)`` with ``i <= j``: each sublist with itself, then each disjoint pair once.

    There are ``n * (n + 1) / 2`` of them; together they cover every
    unordered pair of distinct stations exactly once.
    """
    if isinstance(n_station_lists, bool) or not isinstance(n_station_lists, int):
        raise ValueError(f"number of sublists must be an int, got {n_station_lists!r}")
    if n_station_lists < 1:
        raise ValueError(f"number of sublists must be >= 1, got {n_station_lists}")
    return iter(
        [(i, j) for i in range(n_station_lists) for j in range(i, n_station_lists)]
    )


def station_pairs(
    stations: Sequence[H], n: int, i: int, j: int
) -> Iterator[tuple[H, H]]:
    """Pairs of one correlation job: inside sublist ``i`` if ``i == j``, else across ``i`` x ``j``.

    Pairs come in input order (the earlier station first), so a pair's
    orientation does not depend on how the stations were split.
    """
    _check_n(n, len(stations), "stations")
    _check_index(i, n)
    _check_index(j, n)
    if i > j:
        raise ValueError(f"correlation job ({i}, {j}) must have i <= j")
    _check_unique(stations, "station")
    first = sublists(stations, n, i)
    if i == j:
        return itertools.combinations(first, 2)
    return itertools.product(first, sublists(stations, n, j))


def correlation_partition(
    dates: Sequence[H],
    stations: Sequence[H],
    n_date_lists: int,
    n_station_lists: int,
) -> Iterator[CorrelationJob]:
    """Every correlation job: each date sublist x each :func:`correlation_jobs` pair."""
    _check_n(n_date_lists, len(dates), "dates")
    _check_n(n_station_lists, len(stations), "stations")
    _check_unique(dates, "date")
    _check_unique(stations, "station")
    pairs = list(correlation_jobs(n_station_lists))
    return (
        CorrelationJob(n_date_lists, idate, n_station_lists, i, j)
        for idate in range(n_date_lists)
        for i, j in pairs
    )


def job_count(n_date_lists: int, n_station_lists: int, kind: str = "processing") -> int:
    """How many jobs (``param.txt`` lines) a campaign has, without building them."""
    if kind == "processing":
        return n_date_lists * n_station_lists
    if kind == "correlation":
        return n_date_lists * n_station_lists * (n_station_lists + 1) // 2
    raise ValueError(f"kind must be 'processing' or 'correlation', got {kind!r}")
