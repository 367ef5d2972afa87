"""Helpers for tests of the driver (and of apps that run it): a recording sink, polling, the node as a process."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from . import diagnostics


class RecordingSink:
    """The driver core's sink for plain tests: keeps states, clock, world, diagnostics and logs."""

    def __init__(self):
        self.states, self.clocks, self.worlds, self.diags, self.logs = [], [], [], [], []

    def state(self, reading, stamp_ns):
        self.states.append((stamp_ns, reading))

    def clock(self, stamp_ns):
        self.clocks.append(stamp_ns)

    def world(self, world, stamp_ns):
        self.worlds.append((stamp_ns, world))

    def diagnostics(self, stats, stamp_ns):
        self.diags.append(diagnostics.build(stats))

    def log(self, level, message):
        self.logs.append((level, message))


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
    """Run the installed hand_driver with ROS parameters; SIGINT and wait on exit. Yields the Popen."""
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
