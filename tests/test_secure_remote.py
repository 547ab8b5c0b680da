"""Selective reads: ``client.open(path)``, a seekable block-cached file object over a data object."""

from __future__ import annotations

import io
import os
import random

import h5py
import numpy as np
import pytest

from secure_irods import NotFoundError


@pytest.fixture
def blob(client, coll, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 123)
    local = tmp_path / "blob.bin"
    local.write_bytes(data)
    client.put(local, f"{coll}/blob.bin")
    return f"{coll}/blob.bin", data


def test_random_reads_return_the_objects_bytes(client, blob):
    path, data = blob
    rng = random.Random(1)
    with client.open(path, block_size=4096) as f:
        assert f.size == len(data) and f.seekable() and f.readable()
        for _ in range(40):
            offset = rng.randrange(0, len(data))
            length = rng.randrange(1, 100_000)
            f.seek(offset)
            assert f.read(length) == data[offset:offset + length]
            assert f.tell() == min(len(data), offset + length)
        f.seek(-10, io.SEEK_END)
        assert f.read() == data[-10:]
        assert f.read(5) == b""


def test_cached_blocks_cost_no_round_trip(client, blob):
    path, data = blob
    with client.open(path, block_size=65536) as f:
        f.seek(100_000)
        assert f.read(1000) == data[100_000:101_000]
        trips = f.round_trips
        f.seek(100_500)
        assert f.read(100) == data[100_500:100_600]
        assert f.round_trips == trips
        f.seek(2_000_000)
        f.read(10)
        assert f.round_trips == trips + 2     # one seek, one read on the open reader


@pytest.mark.faults
def test_selective_reads_under_connection_drops_return_identical_bytes(client, grid, blob):
    from secure_irods import RetryPolicy, connect

    path, data = blob
    grid.control.reset_stats()
    grid.set_faults(drop_rate=0.2, seed=7)
    try:
        rng = random.Random(2)
        patient = connect(policy=RetryPolicy(attempts=40, initial=0.0, increment=0.0, max_wait=0.01),
                          cooldown=False)
        with patient, patient.open(path, block_size=8192) as f:
            for _ in range(30):
                offset = rng.randrange(0, len(data))
                length = rng.randrange(1, 300_000)
                assert f.pread(offset, length) == data[offset:offset + length]
            f.seek(0)
            assert f.read() == data
        assert grid.control.stats()["drops"] >= 5
    finally:
        grid.clear_faults()


def test_h5py_opens_a_remote_file(client, coll, tmp_path):
    local = tmp_path / "x.h5"
    with h5py.File(local, "w") as h5:
        h5["a"] = np.arange(100_000, dtype="f4")
        h5["a"].attrs["unit"] = "m"
    client.put(local, f"{coll}/x.h5")
    with client.open(f"{coll}/x.h5") as f, h5py.File(f, "r") as h5:
        assert h5["a"].attrs["unit"] == "m"
        assert np.array_equal(h5["a"][500:510], np.arange(500, 510, dtype="f4"))


def test_missing_object_is_not_found(client, coll):
    with pytest.raises(NotFoundError):
        client.open(f"{coll}/nope.h5")
