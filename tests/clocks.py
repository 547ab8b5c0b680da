"""The fake clock the unit tests inject (``clock=``, ``sleep=``): time moves only when the code
under test sleeps or the test moves it (``fake.now += 5``), so tests count waits instead of
timing them."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def slept(self) -> float:
        return sum(self.sleeps)
