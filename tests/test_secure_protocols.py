"""The seam under the client: PrcBackend and the in-memory test backend against secure_irods.protocols,
and Client.copy, the one way to make "a client like this one"."""

from __future__ import annotations

import inspect

import pytest

from secure_irods.protocols import Backend, TransferBackend
from test_secure_pipeline import FakeZone, fake_client


def _members(protocol: type) -> dict[str, inspect.Signature]:
    out = {}
    for cls in reversed(protocol.__mro__):
        if cls in (TransferBackend, Backend):
            out.update({name: inspect.signature(fn) for name, fn in vars(cls).items()
                        if callable(fn) and not name.startswith("_")})
    return out


def _parameters(sig: inspect.Signature) -> list[tuple[str, object]]:
    return [(p.name, p.kind) for p in sig.parameters.values()]


@pytest.mark.parametrize("name", sorted(_members(Backend)))
def test_prc_backend_has_each_protocol_method_with_its_parameters(name):
    from secure_irods.backend import PrcBackend

    assert _parameters(inspect.signature(getattr(PrcBackend, name))) == _parameters(_members(Backend)[name])


def test_the_in_memory_backend_implements_what_a_transfer_needs():
    conn = FakeZone().connect()
    assert isinstance(conn, TransferBackend)
    for name, sig in _members(TransferBackend).items():
        assert _parameters(inspect.signature(getattr(type(conn), name))) == _parameters(sig), name


def test_copy_keeps_every_setting_but_the_changed_ones_and_has_its_own_connection(tmp_path):
    zone = FakeZone()
    zone.put_object("/z/home/u/a", b"abc")
    client = fake_client(zone, tmp_path, streams=2)
    client.stat("/z/home/u/a")
    twin = client.copy(streams=1)
    for setting in ("environment", "policy", "throttle", "cooldown", "io_timeout", "deadline"):
        assert getattr(twin, setting) is getattr(client, setting), setting
    assert (twin.streams, client.streams) == (1, 2)
    assert twin.state == "unopened" and client.state == "open"
    twin.stat("/z/home/u/a")
    assert zone.connections == 2
    with pytest.raises(TypeError, match="colour"):
        client.copy(colour="red")
