"""The grid simulation on the real load-control objects: a small scenario, events counted."""

from __future__ import annotations

import dataclasses

from secure_irods.simulation import Scenario, run_scenario, simulate, summarise

SMALL = Scenario(nodes=12, jobs=4, transfers=5, cap=8, service=0.2, seed=3)


def test_every_transfer_is_done_and_the_zone_never_holds_more_than_its_cap():
    for control in ("adaptive", "fixed"):
        r = simulate(dataclasses.replace(SMALL, control=control))
        assert r.failed == 0 and r.done == 12 * 4 * 5
        assert r.max_active <= SMALL.cap
        assert r.accepted >= r.done and r.refused > 0  # 12 nodes x 4 jobs on 8 slots: refusals happen


def test_the_window_refuses_less_than_the_fixed_cap_and_drains_sooner():
    res = run_scenario(SMALL, seeds=3)
    adaptive, fixed = res["adaptive"], res["fixed"]
    assert sum(r.refused for r in adaptive) < sum(r.refused for r in fixed)
    assert sum(r.drain for r in adaptive) < sum(r.drain for r in fixed)
    table = summarise(res)
    assert "utilisation while queued" in table and "adaptive" in table and "fixed" in table


def test_same_seed_same_run():
    a, b = simulate(SMALL), simulate(SMALL)
    assert (a.drain, a.accepted, a.refused) == (b.drain, b.accepted, b.refused)


def test_a_halved_cap_is_followed():
    r = simulate(dataclasses.replace(SMALL, halve_at=2.0))
    assert r.failed == 0 and r.recovery == r.recovery  # measured (not NaN)
