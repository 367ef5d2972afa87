"""The bus backends' schedule: a wall-clock tick at rate_hz, while the driver is configured.

Each tick reads all servos (one sync read) and publishes the state stamped at the read; each
accepted command is written (one sync write) as soon as it arrives, between ticks. A lost port is
closed and reopened every reconnect_period (torque restored if the driver is active); health
(temperature, hardware errors) is polled every health_period. Runs in the driver's loop thread.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from .dynamixel import HardwareError
from .sdk_io import BusError, PortLost
from .states import DriverState

if TYPE_CHECKING:
    from .driver import HandDriver


class WallClockLoop:
    def __init__(self, driver: "HandDriver") -> None:
        self.driver = driver
        self.stats = driver.stats
        self._last_read_s = 0.0

    def run(self) -> None:
        """Tick until the driver is stopped or cleaned up."""
        d, stats, clock = self.driver, self.stats, self.driver.clock
        period = 1.0 / d.config.rate_hz
        next_tick = clock.monotonic()
        next_health = next_diag = next_reconnect = 0.0
        while d.running():
            d.wait(next_tick - clock.monotonic(), d.has_pending)
            d.serve_requests()
            if not d.running():
                return
            pending = d.take_pending()
            if pending is not None and stats.connected and stats.state is DriverState.ACTIVE:
                self._write(pending)
            now = clock.monotonic()
            if now < next_tick:
                continue
            stats.jitter_s.append(now - next_tick)
            next_tick += period
            if now - next_tick > period:
                stats.overruns += 1
                next_tick = now + period
            if not stats.connected:
                if now >= next_reconnect:
                    next_reconnect = now + d.config.reconnect_period
                    self._reconnect()
            else:
                self._read_tick()
                if stats.connected and now >= next_health:
                    next_health = now + d.config.health_period
                    self._poll_health()
            d.watchdog()
            if now >= next_diag:
                next_diag = now + d.config.diagnostics_period
                d.sink.diagnostics(stats, clock.time_ns())

    def _write(self, targets: np.ndarray) -> None:
        t0 = time.perf_counter()
        try:
            self.driver.targets = self.driver.backend.write(targets)
            self.stats.cycle_s.append(self._last_read_s + time.perf_counter() - t0)
        except PortLost as err:
            self._lost(err)
        except BusError as err:
            self.stats.write_failures += 1
            self.stats.last_error = f"write failed: {err}"

    def _read_tick(self) -> None:
        stats = self.stats
        try:
            reading = self.driver.backend.read()
        except PortLost as err:
            self._lost(err)
            return
        except BusError as err:
            stats.dropped_reads += 1
            stats.consecutive_read_failures += 1
            stats.last_error = stats.last_read_error = f"read failed: {err}"
            if stats.consecutive_read_failures in (1, 20):
                self.driver.sink.log("warn", stats.last_error)
            return
        stats.consecutive_read_failures = 0
        stats.ticks += 1
        self._last_read_s = reading.read_s
        stats.read_s.append(reading.read_s)
        self.driver.publish_state(reading, reading.stamp_ns)

    def _poll_health(self) -> None:
        try:
            self.stats.health = self.driver.backend.poll_health()
        except PortLost as err:
            self._lost(err)
        except BusError as err:
            self.stats.last_error = f"health poll failed: {err}"

    def _lost(self, err: Exception) -> None:
        self.stats.connected = False
        self.stats.port_lost += 1
        self.stats.last_error = str(err)
        self.driver.sink.log("error", f"lost the bus: {err}; reconnecting every {self.driver.config.reconnect_period} s")
        try:
            self.driver.backend.close()
        except BusError:
            pass

    def _reconnect(self) -> None:
        backend = self.driver.backend
        try:
            backend.open()
            if self.stats.state is DriverState.ACTIVE:
                backend.enable(True, self.driver.targets)
        except (HardwareError, BusError) as err:
            self.stats.last_error = f"reconnect failed: {err}"
            try:
                backend.close()
            except BusError:
                pass
            return
        self.stats.connected = True
        self.stats.reconnects += 1
        self.stats.last_error = ""
        self.driver.sink.log("info", f"bus back on {backend.port_name}; {self.stats.state.value}")
