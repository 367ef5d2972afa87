"""The driver core: state machine, command freshness, watchdog, control loop. No rclpy.

States: unconfigured -> (configure: open the port / build the sim) -> inactive -> (activate:
torque on) -> active -> (deactivate: torque off) -> inactive ... -> finalized (torque off, closed).
One loop thread does all backend I/O. Bus backends: a wall-clock tick at rate_hz reads and
publishes the state; each accepted command is written (one sync write) as soon as it arrives.
Lockstep backends: publish a state, wait for the command answering it (or command_timeout, then
hold), step 50 ms, publish clock and the next state, paced by realtime_factor.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from dexndm_description import hand

from .backends import HandBackend, WorldState
from .clock import Clock, SystemClock
from .commands import REFUSAL_REASONS, CommandCheck, refuse, validate_targets
from .dynamixel import HardwareError, JointReading, ServoHealth
from .sdk_io import BusError, PortLost


class Sink(Protocol):
    """Where the core's outputs go (the node publishes them)."""

    def state(self, reading: JointReading, stamp_ns: int) -> None: ...

    def clock(self, stamp_ns: int) -> None: ...

    def world(self, world: WorldState, stamp_ns: int) -> None: ...

    def diagnostics(self, stats: "DriverStats", stamp_ns: int) -> None: ...

    def log(self, level: str, message: str) -> None: ...

    # optional: def closed(self) -> bool, True once the sink can no longer publish (ROS context shut down)


@dataclass
class DriverConfig:
    rate_hz: float = hand.CONTROL_HZ
    command_timeout: float = 0.5  # s
    realtime_factor: float = 1.0  # lockstep only; 0 = as fast as possible
    use_sim_time: bool = False  # lockstep only: stamp states with sim time
    initial_pose: np.ndarray = field(default_factory=lambda: hand.CANONICAL_POSE.copy())
    autostart: bool = True  # configure and activate at start
    health_period: float = 1.0  # s between temperature / hardware-error polls
    diagnostics_period: float = 1.0  # s
    reconnect_period: float = 1.0  # s
    #: lockstep only: publish and step nothing until open_gate(name) was called for every name (each a part of
    #: the graph that must see the run from its first state: the monitor, the viewer)
    start_gates: tuple[str, ...] = ()


@dataclass
class DriverStats:
    """Everything diagnostics report; mutated by the loop thread and by submit() under the lock."""

    backend: str = ""
    port: str = ""
    state: str = "unconfigured"
    connected: bool = False
    last_error: str = ""
    last_read_error: str = ""
    accepted: int = 0
    refused: dict = field(default_factory=lambda: {r: 0 for r in REFUSAL_REASONS})
    last_refusal: str = ""
    clamped_commands: int = 0
    clamped_joints: int = 0
    watchdog_timeouts: int = 0
    holding: bool = False
    ticks: int = 0
    dropped_reads: int = 0
    consecutive_read_failures: int = 0
    write_failures: int = 0
    port_lost: int = 0
    reconnects: int = 0
    overruns: int = 0
    rebooted: list = field(default_factory=list)
    fast_sync_read: bool | None = None
    health: ServoHealth | None = None
    read_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    cycle_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    jitter_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    waiting_for: list = field(default_factory=list)  # start gates not open yet (lockstep)


class HandDriver:
    """Runs one backend; thread-safe entry points: submit(), request_enable(), start(), stop()."""

    def __init__(self, backend: HandBackend, sink: Sink, config: DriverConfig | None = None,
                 clock: Clock | None = None) -> None:
        self.backend = backend
        self.sink = sink
        self.config = config or DriverConfig()
        self.clock = clock or SystemClock()
        self.stats = DriverStats(backend=backend.name, port=backend.port_name)
        self._cv = threading.Condition()
        self._stop = False
        self._pending: np.ndarray | None = None
        self._requests: collections.deque = collections.deque()
        self._targets = hand.clip_to_limits(np.asarray(self.config.initial_pose, dtype=float))
        self._latest_stamp: int | None = None
        self._latest_mono = 0.0
        self._answered = False
        self._last_command_mono = 0.0
        self._last_read_s = 0.0
        self._thread: threading.Thread | None = None
        self._gates_pending = set(self.config.start_gates)
        self.stats.waiting_for = sorted(self._gates_pending)

    # ---- entry points for other threads ---------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dexndm-hand-driver", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; torque goes off and the port closes (in the loop thread)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, position, state_stamp_ns: int) -> CommandCheck:
        """Judge a command; accepted targets are applied by the loop. Refusals are counted, never written."""
        check = validate_targets(position)
        with self._cv:
            if check.accepted:
                check = self._judge_freshness(check, int(state_stamp_ns))
            if not check.accepted:
                self.stats.refused[check.reason] += 1
                self.stats.last_refusal = f"{check.reason}: {check.message}"
                return check
            self.stats.accepted += 1
            if check.clamped:
                self.stats.clamped_commands += 1
                self.stats.clamped_joints += check.clamped
            self._pending = check.targets
            self._answered = True
            self._last_command_mono = self.clock.monotonic()
            self.stats.holding = False
            self._cv.notify_all()
        return check

    def _judge_freshness(self, check: CommandCheck, stamp: int) -> CommandCheck:
        if self.stats.state != "active":
            return refuse("inactive", f"the hand is {self.stats.state}; enable it with /leap_hand/enable first")
        if self._latest_stamp is None or stamp < self._latest_stamp:
            return refuse("stale", f"command answers state {stamp} ns but the latest state is "
                                   f"{self._latest_stamp} ns; answer the newest /leap_hand/joint_states")
        if stamp > self._latest_stamp:
            return refuse("future", f"command answers state {stamp} ns which this driver never published "
                                    f"(latest {self._latest_stamp} ns); copy the state's header.stamp")
        if not self.backend.lockstep and self.clock.monotonic() - self._latest_mono > self.config.command_timeout:
            return refuse("late", f"command arrived more than command_timeout={self.config.command_timeout} s "
                                  f"after its state")
        return check

    def open_gate(self, name: str) -> None:
        """Mark one start gate open; a gated lockstep driver publishes its first state once all of them are."""
        with self._cv:
            self._gates_pending.discard(name)
            self.stats.waiting_for = sorted(self._gates_pending)
            self._cv.notify_all()

    @property
    def _gate_open(self) -> bool:
        return not self._gates_pending

    def request_enable(self, on: bool, timeout: float = 10.0) -> tuple[bool, str]:
        """Activate (torque on; servos with a hardware error are rebooted first) or deactivate."""
        done, result = threading.Event(), []
        with self._cv:
            self._requests.append((on, done, result))
            self._cv.notify_all()
        if not done.wait(timeout):
            return False, "the driver loop did not answer in time"
        return result[0]

    # ---- the loop thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if not self._configure():
                return
            if self.config.autostart:
                self._activate()
            if self.backend.lockstep:
                self._run_lockstep()
            else:
                self._run_wall_clock()
        except Exception as err:  # the loop must never die silently
            closed = getattr(self.sink, "closed", None)
            if callable(closed) and closed():
                return  # a signal shut the ROS context down before stop(): a normal exit (torque off below)
            self.stats.last_error = f"driver loop failed: {err!r}"
            try:
                self.sink.log("error", self.stats.last_error)
            except Exception:  # the sink may be gone at shutdown; torque still goes off below
                pass
        finally:
            self._shutdown()

    def _configure(self) -> bool:
        next_log = 0.0
        while not self._stopped():
            try:
                self.backend.open()
            except (HardwareError, BusError) as err:
                self.stats.last_error = str(err)
                if self.clock.monotonic() >= next_log:
                    self.sink.log("error", f"cannot configure the {self.backend.name} backend: {err}")
                    next_log = self.clock.monotonic() + 10.0
                self.sink.diagnostics(self.stats, self.clock.time_ns())
                self._wait(self.config.reconnect_period)
                continue
            self.stats.connected, self.stats.state, self.stats.last_error = True, "inactive", ""
            self.stats.fast_sync_read = getattr(getattr(self.backend, "hand", None), "fast", None)
            self.sink.log("info", f"{self.backend.name} backend configured on {self.backend.port_name}")
            return True
        return False

    def _activate(self) -> tuple[bool, str]:
        try:
            rebooted = self.backend.enable(True, self._targets)
        except BusError as err:
            self.stats.last_error = f"torque on failed: {err}"
            self.sink.log("error", self.stats.last_error)
            return False, self.stats.last_error
        self.stats.rebooted += rebooted
        self.stats.state = "active"
        self._last_command_mono = self.clock.monotonic()
        message = "torque on" + (f" (rebooted servo(s) {rebooted} to clear hardware errors)" if rebooted else "")
        self.sink.log("info", message)
        return True, message

    def _deactivate(self) -> tuple[bool, str]:
        with self._cv:
            self.stats.state = "inactive"
            self._pending = None
        try:
            self.backend.enable(False, self._targets)
        except BusError as err:
            self.stats.last_error = f"torque off failed: {err}"
            self.sink.log("error", self.stats.last_error)
            return False, self.stats.last_error
        self.sink.log("info", "torque off")
        return True, "torque off"

    def _shutdown(self) -> None:
        if self.stats.state == "active":
            try:
                self.backend.enable(False, self._targets)
            except BusError as err:
                self.sink.log("warn", f"torque off at shutdown failed: {err}")
        try:
            self.backend.close()
        except BusError as err:
            self.sink.log("warn", f"closing the backend failed: {err}")
        self.stats.state = "finalized"

    def _stopped(self) -> bool:
        with self._cv:
            return self._stop

    def _wait(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        deadline = self.clock.monotonic() + seconds
        with self._cv:
            while not self._stop and not until() and not self._requests:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return
                self.clock.wait(self._cv, left)

    def _serve_requests(self) -> None:
        while True:
            with self._cv:
                if not self._requests:
                    return
                on, done, result = self._requests.popleft()
            if not self.stats.connected:
                result.append((False, f"the {self.backend.name} backend is not connected: {self.stats.last_error}"))
            elif on:
                result.append(self._activate())
            else:
                result.append(self._deactivate())
            done.set()

    def _take_pending(self) -> np.ndarray | None:
        with self._cv:
            pending, self._pending = self._pending, None
            return pending

    def _publish_state(self, reading: JointReading, stamp_ns: int) -> None:
        with self._cv:
            self._latest_stamp, self._latest_mono, self._answered = stamp_ns, self.clock.monotonic(), False
        self.sink.state(reading, stamp_ns)
        world = self.backend.world()
        if world is not None:
            self.sink.world(world, stamp_ns)

    def _watchdog(self) -> None:
        if self.stats.state != "active" or self.stats.holding:
            return
        if self.clock.monotonic() - self._last_command_mono > self.config.command_timeout:
            self.stats.holding = True
            self.stats.watchdog_timeouts += 1
            self.sink.log("warn", f"no valid command for {self.config.command_timeout} s: holding the last target")

    # ---- bus backends: wall clock ----------------------------------------------------------
    def _run_wall_clock(self) -> None:
        period = 1.0 / self.config.rate_hz
        next_tick = self.clock.monotonic()
        next_health = next_diag = next_reconnect = 0.0
        while not self._stopped():
            self._wait(next_tick - self.clock.monotonic(), lambda: self._pending is not None)
            self._serve_requests()
            pending = self._take_pending()
            if pending is not None and self.stats.connected and self.stats.state == "active":
                self._write(pending)
            now = self.clock.monotonic()
            if now < next_tick:
                continue
            self.stats.jitter_s.append(now - next_tick)
            next_tick += period
            if now - next_tick > period:
                self.stats.overruns += 1
                next_tick = now + period
            if not self.stats.connected:
                if now >= next_reconnect:
                    next_reconnect = now + self.config.reconnect_period
                    self._reconnect()
            else:
                self._read_tick()
                if self.stats.connected and now >= next_health:
                    next_health = now + self.config.health_period
                    self._poll_health()
            self._watchdog()
            if now >= next_diag:
                next_diag = now + self.config.diagnostics_period
                self.sink.diagnostics(self.stats, self.clock.time_ns())

    def _write(self, targets: np.ndarray) -> None:
        t0 = time.perf_counter()
        try:
            self._targets = self.backend.write(targets)
            self.stats.cycle_s.append(self._last_read_s + time.perf_counter() - t0)
        except PortLost as err:
            self._lost(err)
        except BusError as err:
            self.stats.write_failures += 1
            self.stats.last_error = f"write failed: {err}"

    def _read_tick(self) -> None:
        try:
            reading = self.backend.read()
        except PortLost as err:
            self._lost(err)
            return
        except BusError as err:
            self.stats.dropped_reads += 1
            self.stats.consecutive_read_failures += 1
            self.stats.last_error = self.stats.last_read_error = f"read failed: {err}"
            if self.stats.consecutive_read_failures in (1, 20):
                self.sink.log("warn", self.stats.last_error)
            return
        self.stats.consecutive_read_failures = 0
        self.stats.ticks += 1
        self._last_read_s = reading.read_s
        self.stats.read_s.append(reading.read_s)
        self._publish_state(reading, reading.stamp_ns)

    def _poll_health(self) -> None:
        try:
            self.stats.health = self.backend.poll_health()
        except PortLost as err:
            self._lost(err)
        except BusError as err:
            self.stats.last_error = f"health poll failed: {err}"

    def _lost(self, err: Exception) -> None:
        self.stats.connected = False
        self.stats.port_lost += 1
        self.stats.last_error = str(err)
        self.sink.log("error", f"lost the bus: {err}; reconnecting every {self.config.reconnect_period} s")
        try:
            self.backend.close()
        except BusError:
            pass

    def _reconnect(self) -> None:
        try:
            self.backend.open()
            if self.stats.state == "active":
                self.backend.enable(True, self._targets)
        except (HardwareError, BusError) as err:
            self.stats.last_error = f"reconnect failed: {err}"
            try:
                self.backend.close()
            except BusError:
                pass
            return
        self.stats.connected = True
        self.stats.reconnects += 1
        self.stats.last_error = ""
        self.sink.log("info", f"bus back on {self.backend.port_name}; {self.stats.state}")

    # ---- lockstep backends ----------------------------------------------------------------
    def _run_lockstep(self) -> None:
        rtf = self.config.realtime_factor
        step_wall = hand.CONTROL_DT / rtf if rtf > 0 else 0.0
        next_diag = 0.0
        if not self._gate_open:
            self.sink.log("info", "waiting for the start gates before the first state: "
                                  + ", ".join(sorted(self._gates_pending)))
            while not self._stopped() and not self._gate_open:
                self._serve_requests()
                pending = len(self._gates_pending)  # report at once when one opens, else once a period
                self._wait(self.config.diagnostics_period, lambda: len(self._gates_pending) < pending)
                self.sink.diagnostics(self.stats, self._stamp())
            if self._stopped():
                return
        self.sink.clock(self.backend.sim_time_ns())
        self._publish_state(self.backend.read(), self._stamp())
        # Absolute deadlines, so the physics time is absorbed into the period rather than added to it.
        next_tick = self.clock.monotonic() + step_wall
        while not self._stopped():
            published = self.clock.monotonic()
            while not self._stopped():
                self._serve_requests()
                with self._cv:
                    answered = self._answered
                left = published + self.config.command_timeout - self.clock.monotonic()
                if answered or left <= 0:
                    break
                self._wait(left, lambda: self._answered)
            if self._stopped():
                return
            if not answered and self.stats.state == "active" and not self.stats.holding:
                # Once per lapse, as on the bus backends: holding stays set until a command is accepted.
                self.stats.watchdog_timeouts += 1
                self.stats.holding = True
            if step_wall > 0:
                self._wait(next_tick - self.clock.monotonic())
                next_tick += step_wall
                if self.clock.monotonic() > next_tick:  # more than a tick behind: resynchronise, no burst
                    next_tick = self.clock.monotonic() + step_wall
            pending = self._take_pending()
            if pending is not None:
                self._targets = self.backend.write(pending)
            elif self.stats.holding or self.stats.state != "active":
                self.backend.write(self._targets)
            self.backend.step()
            self.stats.ticks += 1
            self.sink.clock(self.backend.sim_time_ns())
            self._publish_state(self.backend.read(), self._stamp())
            if self.clock.monotonic() >= next_diag:
                next_diag = self.clock.monotonic() + self.config.diagnostics_period
                self.sink.diagnostics(self.stats, self._stamp())

    def _stamp(self) -> int:
        return self.backend.sim_time_ns() if self.config.use_sim_time else self.clock.time_ns()
