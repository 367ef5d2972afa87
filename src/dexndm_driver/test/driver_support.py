"""Test support for the driver tests (and other packages' tests that run it): a recording sink, a
stepped clock, polling, the installed node as a process. Lives with the tests, not in the runtime
package: a test adds this folder to sys.path (the driver tests' conftest.py does) and imports it."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

from dexndm_driver import diagnostics

BUS_SLACK_MS = 60.0  # reply-timeout latency allowance for emulated buses in tests (see hand_driver_process)


class RecordingSink:
    """The driver core's sink for plain tests: keeps states, clock, world, diagnostics and logs, and
    wakes `wait_until` on every output, so tests wait on the driver's events instead of sleeping."""

    def __init__(self):
        self.states, self.clocks, self.worlds, self.diags, self.logs = [], [], [], [], []
        self._changed = threading.Condition()

    def _record(self, store, item):
        with self._changed:
            store.append(item)
            self._changed.notify_all()

    def state(self, reading, stamp_ns):
        self._record(self.states, (stamp_ns, reading))

    def clock(self, stamp_ns):
        self._record(self.clocks, stamp_ns)

    def world(self, world, stamp_ns):
        self._record(self.worlds, (stamp_ns, world))

    def diagnostics(self, stats, stamp_ns):
        self._record(self.diags, diagnostics.build(stats))

    def log(self, level, message):
        self._record(self.logs, (level, message))

    def wait_until(self, predicate, timeout=20.0):
        """Block until predicate() is true after some output (or timeout s); returns its last value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (value := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return value
                self._changed.wait(left)
            return value


class ManualClock:
    """A driver clock that moves only when a test calls `advance`: tick deadlines, timeouts and waits
    follow it exactly, whatever the machine's load. `wait_for_waiter` tells where the driver blocks next."""

    def __init__(self, start: float = 1000.0, wall_ns: int = 1_800_000_000 * 10**9):
        self._now, self._wall0 = float(start), int(wall_ns) - int(start * 1e9)
        self._lock = threading.Condition()
        self._waiters: dict[threading.Condition, tuple[float, int]] = {}
        self.waits = 0  # how many times a thread has started to wait on this clock

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def time_ns(self) -> int:
        return self._wall0 + int(round(self.monotonic() * 1e9))

    def wait(self, cv: threading.Condition, timeout: float) -> None:
        with self._lock:
            self.waits += 1
            self._waiters[cv] = (self._now + timeout, self.waits)
            self._lock.notify_all()
        try:
            cv.wait(1.0)  # woken by advance() or the driver's own notify; the caller re-checks its deadline
        finally:
            with self._lock:
                self._waiters.pop(cv, None)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            waiters = list(self._waiters)
        for cv in waiters:
            with cv:
                cv.notify_all()

    def advance_to(self, t: float) -> None:
        with self._lock:
            self._now = max(self._now, t)
            waiters = list(self._waiters)
        for cv in waiters:
            with cv:
                cv.notify_all()

    def wait_for_waiter(self, after: int = 0, timeout: float = 20.0) -> float | None:
        """Real-time wait until a thread blocks on this clock until a deadline still ahead, in a wait begun
        after the `after`-th one (read `waits` before the event that makes the driver block again);
        returns that deadline, or None after `timeout` real seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                later = [d for d, n in self._waiters.values() if n > after and d > self._now]
                if later:
                    return min(later)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)


def bring_up(driver, activate: bool = True, attempts: int = 5):
    """Start the driver's loop and carry out configure (and activate), as the node's autostart does:
    configure is tried again when it fails (a ping can miss the SDK's reply timeout on a loaded machine)."""
    driver.start()
    for _ in range(attempts):
        ok, message = driver.configure()
        if ok:
            break
    assert ok, message
    if activate:
        ok, message = driver.activate()
        assert ok, message
    return driver


def wait_for(predicate, timeout=5.0, period=0.01):
    """Poll predicate until true or timeout (s); returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    return predicate()


def installed_executable(name: str) -> str:
    """Path of a dexndm_driver console script as colcon installed it (scripts/setup.sh)."""
    from ament_index_python.packages import get_package_prefix

    return os.path.join(get_package_prefix("dexndm_driver"), "lib", "dexndm_driver", name)


@contextlib.contextmanager
def hand_driver_process(**params):
    """Run the installed hand_driver with ROS parameters; SIGINT and wait on exit. Yields the Popen.

    A bus backend (emulator on a pseudo-terminal) gets a 60 ms latency allowance unless the test names
    one: the SDK's 16 ms gives a 34 ms reply timeout, which a test machine running several workers on
    two cores can miss three polls in a row (the emulator is a process of its own)."""
    if params.get("backend") in ("dynamixel", "emulated"):
        params.setdefault("latency_ms", BUS_SLACK_MS)
    args = [installed_executable("hand_driver"), "--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
