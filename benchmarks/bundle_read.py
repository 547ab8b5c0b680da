"""Selective reads of correlation bundles against fetching the whole bundle, over a slow link.

Starts its own local grid, writes one bundle of about ``--size-mb`` (default 500 MB: 1225
pairs of 50 stations x D dates x 8001 lags of float32, as ``seisstore.jobs.correlate``
writes them) and uploads it with its AVUs.  With ``--latency MS`` every connection goes
through a TCP proxy on loopback that holds each chunk ``MS / 2`` in each direction (a
round trip costs ``MS`` more; bandwidth is not limited), so no ``tc``/``netem`` is needed.
Then prints, in one run and over the same link:

* one correlation read selectively (``BundleIndex`` + ``read_pairs``) and the whole
  bundle fetched with ``client.get`` (the client's parallel get);
* 100 correlations (random pairs and dates) read with ``read_pairs``: one range at a
  time on one connection (``streams=1``, what the reader did before), and coalesced with
  several reads in flight (the default);
* the ratio of the 100 selective reads to the whole get (goal at 30 ms: < 0.3), and the
  whole get without the proxy: the bound the machine sets on the get (2 shared cores).

Bytes and read round trips are counted by ``RemoteFile`` (opens, seeks, reads); API
calls by the grid (log-ins, GenQuery and stat included).

    .venv/bin/python benchmarks/bundle_read.py [--size-mb 500] [--latency 30]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localgrid.spawn import spawn  # noqa: E402


class DelayProxy:
    """Loopback TCP proxy to ``target`` adding ``rtt_s`` to every round trip (half each way).

    Each chunk read from one side is written to the other ``rtt_s / 2`` after it arrived,
    in order; at most ``window`` chunks wait per direction (TCP's flow control does the rest).
    """

    def __init__(self, target: tuple[str, int], rtt_s: float, window: int = 256) -> None:
        self.target, self.half, self.window = target, rtt_s / 2.0, window
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="delay-proxy")
        self.thread.start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue(self.window)
        loop = asyncio.get_running_loop()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    dst.close()
                    return
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(send())
        try:
            while True:
                data = await src.read(1 << 18)
                await queue.put((loop.time() + self.half, data))
                if not data:
                    break
            await sender
        except (ConnectionError, OSError):
            sender.cancel()
            dst.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop)
        self.thread.join(5)


def write_bundle(path: Path, n_sta: int, n_dates: int, rate: float, max_lag: float):
    from seisstore.bundles import LocalBundle

    stations = [f"ST{k:02d}" for k in range(n_sta)]
    pairs = [(a, b) for i, a in enumerate(stations) for b in stations[i + 1:]]
    dates = [datetime.date(2011, 3, 1) + datetime.timedelta(days=d) for d in range(n_dates)]
    coords = {s: (45 + 0.01 * k, 5 + 0.02 * k, 100.0) for k, s in enumerate(stations)}
    bundle = LocalBundle(path, pairs, {p: dates for p in pairs}, rate=rate, max_lag_s=max_lag, n_sub=1,
                         attrs={"job": "bench", "code_version": "bench"}, coords=coords)
    rng = np.random.default_rng(0)
    nlag = 2 * int(round(max_lag * rate)) + 1
    block = rng.standard_normal((n_dates, 1, nlag)).astype("f4")
    for k, pair in enumerate(pairs):
        for j, d in enumerate(dates):
            bundle.write(pair, d, block[j] + k, np.array([24]))
    bundle.close()
    return bundle, pairs, dates, block


def main() -> None:
    from secure_irods.client import connect
    from seisstore.bundles import BundleIndex, bundle_avus, read_pairs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=500.0)
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--max-lag", type=float, default=200.0)
    ap.add_argument("--latency", type=float, default=0.0, help="Round-trip time added by the proxy (ms).")
    ap.add_argument("--streams", type=int, default=None, help="Reads in flight (default: read_pairs').")
    a = ap.parse_args()
    n_pairs = a.stations * (a.stations - 1) // 2
    row = (2 * int(round(a.max_lag * a.rate)) + 1) * 4
    n_dates = max(1, math.ceil(a.size_mb * 1e6 / (n_pairs * row)))

    with tempfile.TemporaryDirectory(prefix="bundle-bench-") as tmp:
        tmp = Path(tmp)
        grid = spawn(tmp / "grid")
        proxy = None
        try:
            os.environ.update(IRODS_AUTHENTICATION_FILE=str(grid.auth_file),
                              SECURE_IRODS_THROTTLE_DIR=str(tmp / "throttle"), XDG_CACHE_HOME=str(tmp / "cache"))
            direct = str(grid.env_file)
            os.environ["IRODS_ENVIRONMENT_FILE"] = direct
            t = time.perf_counter()
            bundle, pairs, dates, block = write_bundle(tmp / "b.h5", a.stations, n_dates, a.rate, a.max_lag)
            size = bundle.path.stat().st_size
            coll = f"{grid.home}/bundles"
            remote = f"{coll}/bench.b000.h5"
            with connect() as client:
                client.mkdir(coll)
                client.put(bundle.path, remote)
                client.set_avus(remote, bundle_avus(bundle, job="bench", code="bench", rate=a.rate, chain="-",
                                                    inputs={}))
            print(f"bundle: {size / 1e6:.1f} MB, {len(pairs)} pairs x {n_dates} dates x {row} bytes,"
                  f" metadata head {bundle.head / 1e6:.2f} MB (written and uploaded in"
                  f" {time.perf_counter() - t:.1f} s)")
            control = grid.control

            def measure(fn):
                control.reset_stats()
                t0 = time.perf_counter()
                result = fn()
                return result, time.perf_counter() - t0, control.stats()["api_calls"]

            with connect() as client:          # the bound: the same get without the proxy
                _, bound, _ = measure(lambda: client.get(remote, tmp / "whole.h5", force=True))
            os.unlink(tmp / "whole.h5")
            if a.latency > 0:
                proxy = DelayProxy((grid.host, grid.port), a.latency / 1000.0)
                env = dict(json.loads(Path(direct).read_text()), irods_host="127.0.0.1", irods_port=proxy.port)
                (tmp / "slow_env.json").write_text(json.dumps(env))
                os.environ["IRODS_ENVIRONMENT_FILE"] = str(tmp / "slow_env.json")
            link = f"{a.latency:g} ms round trips added" if a.latency > 0 else "loopback, no latency added"
            print(f"link: {link}")
            rng = random.Random(1)
            wanted = [(rng.choice(pairs), rng.choice(dates)) for _ in range(100)]
            cells = {(p, d) for p, d in wanted}

            def selective(streams, chosen):
                stats: dict = {}
                with connect() as c:
                    index = BundleIndex(c, coll, cache=False)     # connected, as after a command's index query
                    t0 = time.perf_counter()
                    control.reset_stats()
                    got = []
                    for p, ds in chosen.items():
                        got += [x for x in read_pairs(c, index, [p], sorted(ds), stats=stats, streams=streams)]
                    took = time.perf_counter() - t0
                return got, took, control.stats()["api_calls"], stats

            def selective_all(streams):
                stats: dict = {}
                with connect() as c:
                    index = BundleIndex(c, coll, cache=False)     # connected, as after a command's index query
                    t0 = time.perf_counter()
                    control.reset_stats()
                    got = list(read_pairs(c, index, cells=cells, stats=stats, streams=streams))
                    took = time.perf_counter() - t0
                return got, took, control.stats()["api_calls"], stats

            def check(got):
                for c in got:
                    expect = block[dates.index(c.date)] + pairs.index(c.pair)
                    assert np.array_equal(c.data, expect), (c.pair, c.date)

            pair, day = pairs[len(pairs) // 2], dates[len(dates) // 2]
            one, took1, calls1, st1 = selective(1, {pair: {day}})
            check(one)
            print(f"one correlation, selective      : {st1['bytes']:>11,} bytes ({100 * st1['bytes'] / size:.2f} %),"
                  f" {st1['round_trips']} read round trips, {calls1} API calls, {took1 * 1000:.0f} ms")
            with connect() as client:
                client.stat(remote)
                _, whole, calls = measure(lambda: client.get(remote, tmp / "whole.h5", force=True))
            print(f"whole bundle, client.get        : {size:>11,} bytes (100 %), {calls} API calls,"
                  f" {whole * 1000:.0f} ms (without the proxy: {bound * 1000:.0f} ms, the machine's bound)")
            # the 100 cells asked for in one call (one bundle open), as stack and dvv ask
            flags = {}
            for label, streams in (("one range at a time (streams=1)", 1),
                                   (f"coalesced, {a.streams or 'default'} streams", a.streams)):
                got, took, calls, st = selective_all(streams)
                assert len(got) == len(cells)
                check(got)
                flags[streams] = took
                print(f"100 correlations, {label:<24}: {st['bytes']:>11,} bytes ({100 * st['bytes'] / size:.2f} %),"
                      f" {st['round_trips']} read round trips in {st.get('spans', 0)} spans over"
                      f" {st.get('streams', 1)} streams, {calls} API calls, {took * 1000:.0f} ms"
                      f" = {took / whole:.2f} x the whole get")
            ratio = flags[a.streams] / whole
            print(f"goal: 100 correlations < 0.3 x the whole get over the same link: {ratio:.2f}"
                  f" -> {'met' if ratio < 0.3 else 'NOT met'}")
        finally:
            if proxy is not None:
                proxy.stop()
            grid.stop()


if __name__ == "__main__":
    main()
