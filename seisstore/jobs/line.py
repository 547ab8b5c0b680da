"""The job side of a campaign: one ``param.txt`` line, its subset, and the archive.

``from seisstore.jobs import Job``.  ``start.bash`` runs
``job.py <n_dates> <idate> <n_stations> <istation> [<jstation>]`` in
a work directory holding ``dates.txt`` and ``stations.txt``.  :class:`Job` turns that
into the dates and stations (or station pairs) of this line, connects through
``secure_irods`` and indexes only that subset of the archive (a few bulk queries), so a
job script is a loop over ``job.read()``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secure_irods.errors import InvalidInputError
from seisstore.campaign import DATES_FILE, STATIONS_FILE, read_dates, read_stations
from seisstore.layout import Key, Layout, get_layout
from seisstore.partition import station_pairs, sublists

if TYPE_CHECKING:
    from obspy import Stream

    from secure_irods.client import Client
    from seisstore.catalogue import Catalogue


class Job:
    """``with Job(archive) as job: for key, stream in job.read(): ...``"""

    def __init__(self, archive: str | None = None, layout: str | Layout = "sds", argv: Sequence[str] | None = None,
                 workdir: str | os.PathLike = ".", results: str | None = None) -> None:
        args = list(sys.argv[1:] if argv is None else argv)
        if len(args) not in (4, 5) or not all(a.isdigit() for a in args):
            raise ValueError("usage: job <n_dates> <idate> <n_stations> <istation> [<jstation>]")
        self.n_dates, self.idate, self.n_stations, self.istation = map(int, args[:4])
        self.jstation = int(args[4]) if len(args) == 5 else None
        work = Path(workdir)
        try:
            self.all_dates = read_dates(work / DATES_FILE)
            self.all_stations = read_stations(work / STATIONS_FILE)
        except OSError as exc:     # not run where start.bash prepares the line: the job's environment
            raise InvalidInputError(f"cannot read the campaign's lists: {exc}") from None
        self.dates = sublists(self.all_dates, self.n_dates, self.idate)
        mine = sublists(self.all_stations, self.n_stations, self.istation)
        other = sublists(self.all_stations, self.n_stations, self.jstation) if self.jstation is not None else []
        self.stations = list(dict.fromkeys([*mine, *other]))
        self.name = os.environ.get("SEISSTORE_JOB_NAME") or "_".join(args)
        found = archive or os.environ.get("SEISSTORE_ARCHIVE")
        if not found:
            raise ValueError("no archive: pass Job(archive) or set SEISSTORE_ARCHIVE (campaign new --archive does)")
        self.archive: str = found
        #: where results go: SEISSTORE_RESULTS, which ``campaign new --results`` writes into start.bash
        self.results = results or os.environ.get("SEISSTORE_RESULTS")
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self._client: Client | None = None
        self._catalogue: Catalogue | None = None

    @property
    def client(self) -> "Client":
        """The line's ``secure_irods`` client (inside ``with Job(...) as job:`` only)."""
        if self._client is None:
            raise RuntimeError("a Job connects in `with Job(...) as job:`")
        return self._client

    @property
    def catalogue(self) -> "Catalogue":
        """The archive's catalogue, scoped to this line's stations and dates (inside ``with`` only)."""
        if self._catalogue is None:
            raise RuntimeError("a Job indexes its archive in `with Job(...) as job:`")
        return self._catalogue

    def pairs(self) -> Iterator[tuple[str, str]]:
        """Station pairs of a correlation line (within one sublist, or across two)."""
        j = self.istation if self.jstation is None else self.jstation
        return station_pairs(self.all_stations, self.n_stations, self.istation, j)

    def __enter__(self) -> "Job":
        from secure_irods import connect
        from seisstore.catalogue import Catalogue

        self._client = client = connect()
        try:
            self._catalogue = Catalogue(client, self.archive, self.layout, stations=self.stations,
                                        dates=self.dates, cache=False)
        finally:
            client.disconnect()   # indexed: free the node's slot while the job computes
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    def read(self, prefetch: int = 2, **select: Any) -> Iterator[tuple[Key, "Stream"]]:
        """(Key, obspy.Stream) of this line's subset, downloads running ``prefetch`` ahead."""
        return self.catalogue.read(self.catalogue.select(**select), client=self.client, prefetch=prefetch)

    def put(self, local: str | os.PathLike, remote: str | None = None, avus: dict[str, str] | None = None) -> str:
        """Store a result atomically (checksummed, replaced if a killed earlier run left one).

        ``remote`` defaults to ``<results>/<local name>``; ``avus`` are set on it in one
        atomic call (provenance: the job's name is always among them).  Returns the path.
        """
        if remote is None:
            if not self.results:
                raise ValueError("no results collection: pass remote, or set SEISSTORE_RESULTS")
            remote = f"{self.results.rstrip('/')}/{Path(local).name}"
        result = self.client.put(local, remote, force=True)
        self.client.set_avus(result.destination, {"job": self.name, **(avus or {})})
        return result.destination
