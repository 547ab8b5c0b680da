"""Helpers shared by the test modules (test modules never import each other).

``Grid``/``start_grid``: a zone to test against (the fixtures live in ``conftest.py``);
command and client helpers for secure_irods; ``synthetic`` traces for seisstore; the
correlation campaign the scheduler tests (Slurm, OAR) run, and what they compare its
bundles on.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from obspy import Trace, UTCDateTime

from localgrid import GridControl
from localgrid.spawn import SpawnedGrid, spawn
from secure_irods import RetryPolicy
from secure_irods.client import connect

BIN = Path(sys.executable).parent
MiB = 1024 * 1024
START = UTCDateTime("2021-01-01T12:00:00")  # default start of a synthetic trace


@dataclass
class Grid:
    """A zone to test against: a real one, from its environment files, or the local grid this
    run spawned (``spawned``: its directory, process and fault controls)."""

    env_file: Path
    auth_file: Path | None
    env: dict = field(default_factory=dict)
    spawned: SpawnedGrid | None = None

    @property
    def local(self) -> bool:
        return self.spawned is not None

    @property
    def root(self) -> Path | None:
        return self.spawned.root if self.spawned else None

    @property
    def host(self) -> str:
        return self.spawned.host if self.spawned else self.env["irods_host"]

    @property
    def port(self) -> int:
        return self.spawned.port if self.spawned else int(self.env["irods_port"])

    @property
    def zone(self) -> str:
        return self.env["irods_zone_name"]

    @property
    def home(self) -> str:
        return self.env.get("irods_home") or f"/{self.zone}/home/{self.env['irods_user_name']}"

    def session(self, **overrides):
        """A PRC session as this zone's user, or (``overrides``: user, password...) as another."""
        from irods.session import iRODSSession

        if overrides:   # explicit credentials: no environment file
            return iRODSSession(host=self.host, port=self.port, zone=self.zone, **overrides)
        kwargs = {"irods_env_file": str(self.env_file)}
        if self.auth_file:
            kwargs["irods_authentication_file"] = str(self.auth_file)
        return iRODSSession(**kwargs)

    def environ(self) -> dict[str, str]:
        """Variables a subprocess (secure-iget, a job script) needs to reach this zone."""
        env = dict(os.environ, IRODS_ENVIRONMENT_FILE=str(self.env_file))
        if self.auth_file:
            env["IRODS_AUTHENTICATION_FILE"] = str(self.auth_file)
        return env

    @property
    def control(self) -> GridControl:
        if self.spawned is None:
            pytest.skip("needs the local grid's fault injection")
        return self.spawned.control

    def set_faults(self, **faults) -> None:
        self.control.set(**faults)

    def clear_faults(self) -> None:
        if self.local:
            self.control.set(max_connections=0, drop_rate=0.0, latency_ms=0.0, down=[], bandwidth_mbps=0.0,
                             total_bandwidth_mbps=0.0)

    def stop(self) -> None:
        if self.spawned is not None:
            self.spawned.stop()


def start_grid(root: Path, *args: str) -> Grid:
    """Start `secure-irods-grid serve` on port 0 (extra args: faults) and wait until it is ready."""
    g = spawn(root, *args)
    return Grid(g.env_file, g.auth_file, g.env, g)


def command_env(grid, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = grid.environ()
    env.update(SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"), SECURE_IRODS_MAX_WAIT="0.2",
               SECURE_IRODS_COOLDOWN="0.3", **extra)
    return env


def run(tool: str, *args: str, env: dict, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_bytes(rng.randbytes(size))
    return path


def client_for(grid, tmp_path: Path, **policy):
    return connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False,
                   policy=RetryPolicy(max_wait=0.2, **policy))


def remote_state(session, path: str) -> list[tuple[str, str, int]]:
    """(status, checksum, size) of every replica at ``path`` (empty if none)."""
    from irods.models import Collection, DataObject

    parent, name = path.rsplit("/", 1)
    rows = session.query(DataObject.replica_status, DataObject.checksum, DataObject.size).filter(
        Collection.name == parent).filter(DataObject.name == name)
    return [(r[DataObject.replica_status], r[DataObject.checksum], r[DataObject.size]) for r in rows]


def synthetic(sta="OGDI", loc="00", cha="HHZ", rate=1.0, start=START, seconds=3 * 86400, seed=0):
    data = np.random.default_rng(seed).integers(-2**20, 2**20, int(seconds * rate), dtype=np.int32)
    return Trace(data=data, header={"network": "FR", "station": sta, "location": loc, "channel": cha,
                                    "sampling_rate": rate, "starttime": start})


def wait_for(predicate, timeout: float, what: str, poll: float = 0.25, describe=lambda: ""):
    """``predicate()``'s first truthy value within ``timeout`` s; else fail, saying what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}: {describe()}")


def checksums(env_file, auth_file, collection: str) -> dict[str, str]:
    """``{path under collection: checksum}`` of every data object below ``collection``."""
    with connect(env_file=env_file, auth_file=auth_file, throttle=False, cooldown=False) as client:
        root = client.resolve(collection)
        return {s.path[len(root) + 1:]: s.checksum for s in client.scan(root)}


# --- the correlation campaign of the scheduler tests (test_seisstore_slurm.py, test_seisstore_oar.py)

#: Small on purpose (CI has 15 minutes): 4 stations, so that with 2 station blocks every
#: line of the campaign has pairs to correlate; 3 days recorded at 2 Hz, processed to 1 Hz.
XC_STATIONS = ("STA1", "STA2", "STA3", "STA4")
XC_DAYS = tuple(datetime.date(2011, 3, 8) + datetime.timedelta(days=k) for k in range(3))
XC_RAW_RATE = 2.0
XC_CHAIN = [{"op": "detrend"}, {"op": "taper", "fraction": 0.01}, {"op": "bandpass", "freqmin": 0.05, "freqmax": 0.4},
            {"op": "resample", "rate": 1.0}, {"op": "onebit"}, {"op": "whiten", "freqmin": 0.05, "freqmax": 0.4}]
XC_COORDS = {"STA1": [45.0, 5.0, 200.0], "STA2": [45.0, 5.1, 300.0], "STA3": [45.0, 5.3, 100.0],
             "STA4": [45.1, 5.2, 150.0]}


def correlate_settings(processed: str) -> str:
    """``$SEISSTORE_CONFIG`` of the correlation jobs: every setting but the bundle collection.

    The bundles go to ``$SEISSTORE_BUNDLES``, so that the same campaign writes into one
    collection per run (run-local, the scheduler, a single requeued task) and the runs
    can be compared.  One bundle per pair (``bundle_size`` 1): more objects to compare.
    """
    return json.dumps({"correlate": {"processed": processed, "window_s": 3600, "max_lag_s": 20, "bundle_size": 1,
                                     "coordinates": XC_COORDS, "workers": 1}})


def write_raw_noise(directory: Path) -> None:
    """One miniSEED file per station, all the days: independent noise, as ``seisstore ingest`` takes it."""
    from obspy import Stream

    directory.mkdir(parents=True, exist_ok=True)
    start = UTCDateTime(XC_DAYS[0].isoformat())
    for i, sta in enumerate(XC_STATIONS):
        trace = synthetic(sta=sta, rate=XC_RAW_RATE, start=start, seconds=len(XC_DAYS) * 86400, seed=i)
        trace.stats.network = "XX"
        Stream([trace]).write(str(directory / f"{sta}.mseed"), format="MSEED")


def processed_archive(env: dict[str, str], workdir: Path, base: str) -> str:
    """Raw noise ingested into ``base/archive`` and preprocessed once into ``base/processed``; returns the latter.

    The preprocessing is not what the scheduler tests are about: one run of the
    preprocess job over every station-day (one line: 1 0 1 0), in this process's zone.
    """
    from seisstore.ingest import ingest
    from seisstore.layout import SDSLayout

    write_raw_noise(workdir / "raw")
    with connect(env_file=env["IRODS_ENVIRONMENT_FILE"], auth_file=env["IRODS_AUTHENTICATION_FILE"],
                 throttle=False, cooldown=False) as client:
        ingest(client, workdir / "raw", f"{base}/archive", SDSLayout(), progress=False)
    job = workdir / "preprocess"
    job.mkdir()
    (job / "dates.txt").write_text("".join(f"{day.isoformat()}\n" for day in XC_DAYS))
    (job / "stations.txt").write_text("".join(f"{sta}\n" for sta in XC_STATIONS))
    config = {"archive": f"{base}/archive", "processed": f"{base}/processed", "chain": XC_CHAIN}
    done = subprocess.run([sys.executable, "-m", "seisstore.jobs.preprocess", "1", "0", "1", "0"], cwd=job,
                          env=dict(env, SEISSTORE_CONFIG=json.dumps(config), SEISSTORE_JOB_NAME="preprocess"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return f"{base}/processed"


@dataclass(frozen=True)
class Bundles:
    """What two runs of a correlation campaign are compared on (names relative to the bundle collection).

    Not the HDF5 files' bytes: a bundle records when it was written (its attribute
    ``created``, and HDF5's own times in the groups' object headers), so two runs of the
    same line give different files and checksums.
    """

    arrays: dict[str, dict[str, str]]     # {bundle: {dataset: sha256 of its dtype, shape, values and attributes}}
    index: dict[tuple, list[str]]         # the bundle index, from the AVUs: {(pair, date): [bundle]}
    checksums: dict[str, str]             # the zone's checksum of each bundle file, for information


def _dataset_digest(ds) -> str:
    """sha256 of a dataset's dtype, shape, values and attributes (dates, n_windows: what each row is)."""
    digest = hashlib.sha256(f"{ds.dtype.str} {ds.shape}".encode())
    digest.update(np.ascontiguousarray(ds[()]).tobytes())
    attrs = {key: np.asarray(value).tolist() for key, value in ds.attrs.items()}
    digest.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _bundle_arrays(path: Path) -> dict[str, str]:
    """{dataset name: digest} of every dataset of one HDF5 bundle (``lags``, ``pairs/A:B``)."""
    import h5py

    found: dict[str, str] = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda name, item: found.__setitem__(name, _dataset_digest(item))
                      if isinstance(item, h5py.Dataset) else None)
    return found


def read_bundles(env_file, auth_file, collection: str) -> Bundles:
    """Every bundle of ``collection``: each downloaded and read with h5py, and the bundle index."""
    import tempfile

    from seisstore.bundles import BundleIndex

    with connect(env_file=env_file, auth_file=auth_file, throttle=False, cooldown=False) as client, \
            tempfile.TemporaryDirectory(prefix="bundles-") as tmp:
        root = client.resolve(collection)
        stats = {s.path[len(root) + 1:]: s for s in client.scan(root)}
        local = {name: Path(tmp) / name.replace("/", "_") for name in stats}
        client.get_many((f"{root}/{name}", path) for name, path in local.items())
        arrays = {name: _bundle_arrays(path) for name, path in local.items()}
        table = BundleIndex(client, root, cache=False).table()
    index = {cell: sorted(path[len(root) + 1:] for path in paths) for cell, paths in table.items()}
    return Bundles(arrays, index, {name: s.checksum for name, s in stats.items()})


def assert_complete(bundles: Bundles, lines: list[str]) -> None:
    """The reference run wrote every (pair, date) of the stations into one bundle, and every line wrote some."""
    pairs = [(a, b) for k, a in enumerate(XC_STATIONS) for b in XC_STATIONS[k + 1:]]
    assert sorted(bundles.index) == sorted((pair, day) for pair in pairs for day in XC_DAYS), bundles.index
    assert all(len(names) == 1 for names in bundles.index.values()), bundles.index
    idle = [line for line in lines if not any(name.startswith(f"{line}.") for name in bundles.arrays)]
    assert not idle, f"lines without bundles: {idle}"


def line_bundles(bundles: Bundles, line: str) -> Bundles:
    """The part of ``bundles`` one param line wrote (its bundles are named ``<line>.b<k>.h5``)."""
    mine = lambda name: name.startswith(f"{line}.")
    return Bundles({n: a for n, a in bundles.arrays.items() if mine(n)},
                   {cell: names for cell, names in bundles.index.items() if all(mine(n) for n in names)},
                   {n: c for n, c in bundles.checksums.items() if mine(n)})


def assert_same_correlations(got: Bundles, want: Bundles) -> str:
    """Same bundle objects, same index, same correlation arrays; returns a line saying so (and about the bytes)."""
    assert sorted(got.arrays) == sorted(want.arrays), f"bundle objects differ: {sorted(got.arrays)} != {sorted(want.arrays)}"
    assert got.index == want.index, f"the bundle indexes differ: {got.index} != {want.index}"
    differ = sorted(f"{name}:{ds}" for name, arrays in want.arrays.items() for ds in arrays
                    if got.arrays[name].get(ds) != arrays[ds])
    assert got.arrays == want.arrays, f"correlation arrays differ in {differ or 'the datasets present'}"
    same_bytes = sum(got.checksums[name] == want.checksums[name] for name in want.checksums)
    return (f"{len(want.arrays)} bundles, {sum(map(len, want.arrays.values()))} datasets and {len(want.index)}"
            f" (pair, date) cells equal; {same_bytes} of {len(want.checksums)} files byte-identical")
