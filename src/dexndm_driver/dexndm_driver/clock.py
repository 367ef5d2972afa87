"""The driver core's clock: what it schedules by and how it waits (no rclpy).

`HandDriver` takes a clock as `CollectionRun` does, so tests drive its time instead of sleeping:
`SystemClock` is the real one; the tests' `ManualClock` (test/driver_support.py) moves only when a
test advances it.
Stamps of bus readings stay the system clock (dynamixel.py); only scheduling and waiting go through here.
"""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: tick deadlines, timeouts."""
        ...

    def time_ns(self) -> int:
        """Wall-clock ns since the epoch: stamps of lockstep states without use_sim_time, diagnostics."""
        ...

    def wait(self, cv: threading.Condition, timeout: float) -> None:
        """Block on `cv` (held by the caller) for at most `timeout` s of this clock, or until notified."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time_ns(self) -> int:
        return time.time_ns()

    def wait(self, cv: threading.Condition, timeout: float) -> None:
        cv.wait(timeout)
