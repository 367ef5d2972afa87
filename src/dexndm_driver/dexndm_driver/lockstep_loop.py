"""The simulated backends' schedule: lockstep with the command stream, while the driver is configured.

Publish a state, wait for the command answering it (or command_timeout, then hold the last
target), wait for the next tick deadline (every 50 ms / realtime_factor of the driver's clock,
absolute, so the physics time is absorbed into the period; none at realtime_factor 0), step
50 ms, publish /clock and the next state. A gated driver publishes nothing until all its gates open.
Runs in the driver's loop thread.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dexndm_description import hand

from .states import DriverState

if TYPE_CHECKING:
    from .driver import HandDriver


class LockstepLoop:
    def __init__(self, driver: "HandDriver") -> None:
        self.driver = driver
        self.stats = driver.stats

    def run(self) -> None:
        """Step until the driver is stopped or cleaned up."""
        d, stats, clock, backend = self.driver, self.stats, self.driver.clock, self.driver.backend
        rtf = d.config.realtime_factor
        step_wall = hand.CONTROL_DT / rtf if rtf > 0 else 0.0
        if not self._wait_for_gate():
            return
        d.sink.clock(backend.sim_time_ns())
        d.publish_state(backend.read(), self._stamp())
        next_diag = 0.0
        next_tick = clock.monotonic() + step_wall
        while d.running():
            answered = self._wait_for_answer()
            if not d.running():
                return
            if not answered and stats.state is DriverState.ACTIVE and not stats.holding:
                # Once per lapse, as on the bus backends: holding stays set until a command is accepted.
                stats.watchdog_timeouts += 1
                stats.holding = True
            if step_wall > 0:
                d.wait(next_tick - clock.monotonic())
                next_tick += step_wall
                if clock.monotonic() > next_tick:  # more than a tick behind: resynchronise, no burst
                    next_tick = clock.monotonic() + step_wall
            pending = d.take_pending()
            if pending is not None:
                d.targets = backend.write(pending)
            elif stats.holding or stats.state is not DriverState.ACTIVE:
                backend.write(d.targets)
            backend.step()
            stats.ticks += 1
            d.sink.clock(backend.sim_time_ns())
            d.publish_state(backend.read(), self._stamp())
            if clock.monotonic() >= next_diag:
                next_diag = clock.monotonic() + d.config.diagnostics_period
                d.sink.diagnostics(stats, self._stamp())

    def _wait_for_gate(self) -> bool:
        """False when the driver stopped or was cleaned up before the gate opened."""
        d = self.driver
        if d.gate_open():
            return True
        d.sink.log("info", "waiting for the start gates before the first state: " + ", ".join(d.stats.waiting_for))
        while d.running() and not d.gate_open():
            d.serve_requests()
            pending = d.gates_pending()  # report at once when one opens, else once a period
            d.wait(d.config.diagnostics_period, lambda: d.gates_pending() < pending)
            d.sink.diagnostics(self.stats, self._stamp())
        return d.running()

    def _wait_for_answer(self) -> bool:
        """Wait up to command_timeout for the command answering the newest state; serves transitions."""
        d = self.driver
        published = d.clock.monotonic()
        while True:
            d.serve_requests()
            if not d.running():
                return False
            answered = d.answered()
            left = published + d.config.command_timeout - d.clock.monotonic()
            if answered or left <= 0:
                return answered
            d.wait(left, d.answered)

    def _stamp(self) -> int:
        return self.driver.backend.sim_time_ns() if self.driver.config.use_sim_time else self.driver.clock.time_ns()
