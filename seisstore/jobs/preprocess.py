"""Preprocessing job: one campaign line (dates x stations) of raw day files -> processed day files.

``python -m seisstore.jobs.preprocess <n_dates> <idate> <n_stations> <istation>`` in a
work directory holding ``dates.txt`` and ``stations.txt`` (what ``start.bash`` prepares).
Settings (JSON, see :func:`seisstore.jobs.load_config`; environment variables fill in)::

    {"archive": "/zone/home/me/raw",            # $SEISSTORE_ARCHIVE: raw day files
     "processed": "/zone/home/me/processed",    # $SEISSTORE_PROCESSED, else $SEISSTORE_RESULTS: where results go
     "layout": "sds",                           # of both archives
     "channels": ["HHZ"],                       # default: every channel
     "chain": [...]}                            # default: seisstore.preprocessing.DEFAULT_CHAIN

Each station-day of the line is read once (``Job.read``: catalogue scoped to the line,
downloads ahead), processed by the chain (:func:`seisstore.preprocessing.process_day`)
and stored at the same layout path under ``processed`` (miniSEED float32, atomic put;
gaps, non-finite input and transients stay gaps) with the day-file AVUs plus ``chain``
(canonical JSON), ``input_checksum`` (the raw file's), ``code_version`` and the
``qc.*`` flags (:meth:`seisstore.preprocessing.ProcessedDay.qc_avus`).  A station-day
with no usable data is skipped with a warning.  A station-day whose processed file already names the same
chain and input checksum is skipped (found by one bulk GenQuery), so a rerun of a killed
or finished line redoes only what is missing.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from secure_irods.query import Query

from seisstore.jobs import Job, load_config, main_wrapper, output_collection, setting

if TYPE_CHECKING:
    from secure_irods.client import Client

log = logging.getLogger("seisstore.jobs.preprocess")


def processed_state(client: "Client", root: str) -> dict[str, dict[str, str]]:
    """Object path -> {chain, input_checksum} of the processed files under ``root`` (one bulk GenQuery)."""
    q = (Query("COLL_NAME", "DATA_NAME", "META_DATA_ATTR_NAME", "META_DATA_ATTR_VALUE")
         .under(root)
         .where_any("META_DATA_ATTR_NAME", [("=", "chain"), ("=", "input_checksum")]))
    state: dict[str, dict[str, str]] = {}
    for coll, name, attr, value in client.query(q):
        state.setdefault(f"{coll}/{name}", {})[attr] = value
    return state


def run(argv: list[str], workdir: str | os.PathLike = ".", config: dict | None = None) -> int:
    from seisstore.version import code_version
    from seisstore.dayfiles import store_days
    from seisstore.preprocessing import DEFAULT_CHAIN, chain_text, process_day

    config = dict(config) if config is not None else load_config("preprocess", workdir)
    archive = setting(config, "archive", "SEISSTORE_ARCHIVE")
    processed = output_collection(config, "processed", "SEISSTORE_PROCESSED")
    if not archive or not processed:
        raise ValueError("preprocess needs the raw archive and the processed collection (settings"
                         " archive/processed or $SEISSTORE_ARCHIVE/$SEISSTORE_PROCESSED or $SEISSTORE_RESULTS)")
    chain = config.get("chain", DEFAULT_CHAIN)
    text = chain_text(chain)
    channels = config.get("channels")
    version = code_version()
    with Job(archive, layout=config.get("layout", "sds"), argv=argv, workdir=workdir) as job:
        client = job.client
        processed = client.resolve(processed).rstrip("/")
        layout = job.layout
        state = processed_state(client, processed)
        todo = []
        for key, entry in job.catalogue.select(channels=channels):
            target = f"{processed}/{layout.path(key)}"
            if state.get(target) == {"chain": text, "input_checksum": entry.checksum}:
                continue
            todo.append((key, entry))
        log.info("%s: %d station-days to process, %d already done", job.name, len(todo),
                 len(list(job.catalogue.select(channels=channels))) - len(todo))
        checksums = {key: entry.checksum for key, entry in todo}
        for key, stream in job.catalogue.read(todo, client=client, prefetch=2):
            try:
                day = process_day(stream, key.day, chain)
            except ValueError as exc:
                log.warning("%s %s skipped: %s", key.seed_id, key.day, exc)
                continue
            pieces = day.stream()
            if not len(pieces):
                log.warning("%s %s skipped: no data left after the chain's quality control", key.seed_id, key.day)
                continue
            for trace in pieces:
                trace.stats.network, trace.stats.station = key.net, key.sta
                trace.stats.location, trace.stats.channel = key.loc, key.cha
            path = store_days(client, processed, layout, {key: pieces}, force=True)[0]
            client.set_avus(path, {"chain": text, "input_checksum": checksums[key] or "-", "code_version": version,
                                   **day.qc_avus()})
    return 0


def main(argv: list[str] | None = None, config: dict | None = None) -> None:
    """Entry point; ``config``: settings embedded by a job script (else the JSON file or environment)."""
    main_wrapper(lambda args: run(args, os.environ.get("SEISSTORE_WORKDIR") or ".", config), argv,
                 prog="seisstore.jobs.preprocess")


if __name__ == "__main__":
    main()
