"""The driver core: lifecycle state machine, command freshness, watchdog. No rclpy.

States and transitions are in states.py (those of a ROS 2 managed node): configure opens the port
(or builds the sim), activate turns torque on, deactivate turns it off, cleanup closes the port,
shutdown from any state leaves torque off and the port closed. Transitions are asked for from
any thread and carried out by the one loop thread that does all backend I/O. While configured, the
loop runs the backend's schedule: a wall-clock tick for bus backends (wall_clock_loop.py), the
command-paced lockstep for simulated ones (lockstep_loop.py).
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from dexndm_description import hand

from .backends import HandBackend, WorldState
from .clock import Clock, SystemClock
from .commands import REFUSAL_REASONS, CommandCheck, refuse, validate_targets
from .dynamixel import HardwareError, JointReading, ServoHealth
from .lockstep_loop import LockstepLoop
from .sdk_io import BusError
from .states import DriverState, Transition, refusal
from .wall_clock_loop import WallClockLoop

ACTIVE, INACTIVE, UNCONFIGURED, FINALIZED = (DriverState.ACTIVE, DriverState.INACTIVE, DriverState.UNCONFIGURED,
                                            DriverState.FINALIZED)


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
    health_period: float = 1.0  # s between temperature / hardware-error polls
    diagnostics_period: float = 1.0  # s
    reconnect_period: float = 1.0  # s
    #: lockstep only: publish and step nothing until open_gate(name) was called for every name (each a part of
    #: the graph that must see the run from its first state: the monitor, the viewer)
    start_gates: tuple[str, ...] = ()
    transition_timeout: float = 30.0  # s a caller waits for the loop to carry out a transition


@dataclass
class DriverStats:
    """Everything diagnostics report; mutated by the loop thread and by submit() under the lock."""

    backend: str = ""
    port: str = ""
    state: DriverState = DriverState.UNCONFIGURED
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
    waiting_for: list = field(default_factory=list)  # start gates not open yet (lockstep)
    fast_sync_read: bool | None = None
    health: ServoHealth | None = None
    read_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    cycle_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    jitter_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))


class HandDriver:
    """Runs one backend. Thread-safe entry points: start(), the transitions (configure(), activate(),
    deactivate(), cleanup(), shutdown() = stop()), submit(), open_gate(). It starts unconfigured."""

    def __init__(self, backend: HandBackend, sink: Sink, config: DriverConfig | None = None,
                 clock: Clock | None = None) -> None:
        self.backend = backend
        self.sink = sink
        self.config = config or DriverConfig()
        self.clock = clock or SystemClock()
        self.stats = DriverStats(backend=backend.name, port=backend.port_name)
        #: The targets the hand holds (rad): the initial pose until a command is written.
        self.targets = self._initial_targets()
        self._cv = threading.Condition()
        self._stop = False
        self._pending: np.ndarray | None = None
        self._requests: collections.deque = collections.deque()
        self._latest_stamp: int | None = None
        self._latest_mono = 0.0
        self._answered = False
        self._last_command_mono = 0.0
        self._next_configure_log = 0.0
        self._thread: threading.Thread | None = None
        self._gates_pending = set(self.config.start_gates)
        self.stats.waiting_for = sorted(self._gates_pending)

    @property
    def state(self) -> DriverState:
        return self.stats.state

    # ---- entry points for other threads ---------------------------------------------------
    def start(self) -> None:
        """Start the loop thread (unconfigured: nothing is opened until configure())."""
        self._thread = threading.Thread(target=self._run, name="dexndm-hand-driver", daemon=True)
        self._thread.start()

    def configure(self) -> tuple[bool, str]:
        """Open the port and set the servos up (or reset the sim); torque stays off. One attempt."""
        return self._request(Transition.CONFIGURE)

    def activate(self) -> tuple[bool, str]:
        """Torque on at the held targets (servos with a latched hardware error are rebooted first)."""
        return self._request(Transition.ACTIVATE)

    def deactivate(self) -> tuple[bool, str]:
        """Torque off; commands are refused until activate()."""
        return self._request(Transition.DEACTIVATE)

    def cleanup(self) -> tuple[bool, str]:
        """Close the port (or free the sim); back to unconfigured."""
        return self._request(Transition.CLEANUP)

    def shutdown(self, timeout: float = 10.0) -> tuple[bool, str]:
        """From any state: torque off if on, the port closed, finalized; the loop thread ends."""
        self.stop(timeout)
        if self.stats.state is not FINALIZED:
            return False, f"the driver loop did not finish within {timeout} s"
        return True, "finalized: torque off, port closed"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; torque goes off and the port closes (in the loop thread)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is None:
            self._finalize()  # never started: no other thread touches the backend
        else:
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

    def open_gate(self, name: str) -> None:
        """Mark one start gate open; a gated lockstep driver publishes its first state once all of them are."""
        with self._cv:
            self._gates_pending.discard(name)
            self.stats.waiting_for = sorted(self._gates_pending)
            self._cv.notify_all()

    def _judge_freshness(self, check: CommandCheck, stamp: int) -> CommandCheck:
        if self.stats.state is not ACTIVE:
            return refuse("inactive", f"the hand is {self.stats.state.value}; enable it with /leap_hand/enable "
                                      f"(or the lifecycle activate transition) first")
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

    def _request(self, transition: Transition) -> tuple[bool, str]:
        done, result = threading.Event(), []
        with self._cv:
            if self._thread is None or not self._thread.is_alive() or self._stop:
                return False, f"cannot {transition.value}: the driver loop is not running ({self.stats.state.value})"
            self._requests.append((transition, done, result))
            self._cv.notify_all()
        if not done.wait(self.config.transition_timeout):
            return False, f"the driver loop did not {transition.value} within {self.config.transition_timeout} s"
        return result[0]

    # ---- the loop thread -------------------------------------------------------------------
    def _run(self) -> None:
        next_diag = 0.0
        try:
            while not self._stopped():
                self.serve_requests()
                if self.running():
                    loop = LockstepLoop(self) if self.backend.lockstep else WallClockLoop(self)
                    loop.run()
                    continue
                # unconfigured: nothing open; report, and wait for a transition
                if self.clock.monotonic() >= next_diag:
                    next_diag = self.clock.monotonic() + self.config.diagnostics_period
                    self.sink.diagnostics(self.stats, self.clock.time_ns())
                self.wait(next_diag - self.clock.monotonic())
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
            self._finalize()

    def _carry_out(self, transition: Transition) -> tuple[bool, str]:
        why_not = refusal(transition, self.stats.state)
        if why_not is not None:
            return False, why_not
        if transition is Transition.CONFIGURE:
            return self._configure()
        if transition is Transition.ACTIVATE:
            return self._activate()
        if transition is Transition.DEACTIVATE:
            return self._deactivate()
        if transition is Transition.CLEANUP:
            return self._cleanup()
        return False, "shutdown is stop(): it ends the loop"

    def _configure(self) -> tuple[bool, str]:
        try:
            self.backend.open()
        except (HardwareError, BusError) as err:
            self.stats.last_error = str(err)
            if self.clock.monotonic() >= self._next_configure_log:  # autostart retries every second
                self.sink.log("error", f"cannot configure the {self.backend.name} backend: {err}")
                self._next_configure_log = self.clock.monotonic() + 10.0
            self.sink.diagnostics(self.stats, self.clock.time_ns())
            return False, f"cannot configure the {self.backend.name} backend: {err}"
        with self._cv:
            self.targets = self._initial_targets()
            self._latest_stamp, self._pending, self._answered = None, None, False
            self.stats.connected, self.stats.state, self.stats.last_error = True, INACTIVE, ""
        self.stats.fast_sync_read = getattr(getattr(self.backend, "hand", None), "fast", None)
        message = f"{self.backend.name} backend configured on {self.backend.port_name} (torque off)"
        self.sink.log("info", message)
        return True, message

    def _activate(self) -> tuple[bool, str]:
        if not self.stats.connected:
            return False, f"the {self.backend.name} backend is not connected: {self.stats.last_error}"
        try:
            rebooted = self.backend.enable(True, self.targets)
        except BusError as err:
            self.stats.last_error = f"torque on failed: {err}"
            self.sink.log("error", self.stats.last_error)
            return False, self.stats.last_error
        self.stats.rebooted += rebooted
        with self._cv:
            self.stats.state = ACTIVE
            self._last_command_mono = self.clock.monotonic()
        message = "torque on" + (f" (rebooted servo(s) {rebooted} to clear hardware errors)" if rebooted else "")
        self.sink.log("info", message)
        return True, message

    def _deactivate(self) -> tuple[bool, str]:
        with self._cv:
            self.stats.state = INACTIVE  # refused from now on, even if the torque-off write fails
            self._pending = None
        if not self.stats.connected:
            return True, "torque off (the bus is gone; torque stays off when it comes back)"
        try:
            self.backend.enable(False, self.targets)
        except BusError as err:
            self.stats.last_error = f"torque off failed: {err}"
            self.sink.log("error", self.stats.last_error)
            return False, self.stats.last_error
        self.sink.log("info", "torque off")
        return True, "torque off"

    def _cleanup(self) -> tuple[bool, str]:
        self._close()
        with self._cv:
            self.stats.state = UNCONFIGURED
        message = f"{self.backend.name} backend closed ({self.backend.port_name})"
        self.sink.log("info", message)
        return True, message

    def _close(self) -> None:
        try:
            self.backend.close()
        except BusError as err:
            self.sink.log("warn", f"closing the backend failed: {err}")
        self.stats.connected = False

    def _finalize(self) -> None:
        if self.stats.state is FINALIZED:
            return
        if self.stats.state is ACTIVE and self.stats.connected:
            try:
                self.backend.enable(False, self.targets)
            except BusError as err:
                self.sink.log("warn", f"torque off at shutdown failed: {err}")
        if self.stats.state.configured:
            self._close()
        self.backend.release()
        with self._cv:
            self.stats.state = FINALIZED
            requests, self._requests = list(self._requests), collections.deque()
        for transition, done, result in requests:
            result.append((False, f"cannot {transition.value}: the driver is finalized"))
            done.set()

    def _stopped(self) -> bool:
        with self._cv:
            return self._stop

    def _initial_targets(self) -> np.ndarray:
        return hand.clip_to_limits(np.asarray(self.config.initial_pose, dtype=float))

    # ---- for the loops (loop thread only) ----------------------------------------------------
    def running(self) -> bool:
        """Not stopped and configured: the loop should go on with its schedule."""
        with self._cv:
            return not self._stop and self.stats.state.configured

    def serve_requests(self) -> None:
        """Carry out the transitions asked for since the last call, in order."""
        while True:
            with self._cv:
                if not self._requests:
                    return
                transition, done, result = self._requests.popleft()
            result.append(self._carry_out(transition))
            done.set()

    def wait(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Block up to seconds of the driver's clock, or until stop, a transition request or until()."""
        deadline = self.clock.monotonic() + seconds
        with self._cv:
            while not self._stop and not until() and not self._requests:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return
                self.clock.wait(self._cv, left)

    def has_pending(self) -> bool:
        with self._cv:
            return self._pending is not None

    def answered(self) -> bool:
        """A command answering the newest state has been accepted."""
        with self._cv:
            return self._answered

    def gate_open(self) -> bool:
        with self._cv:
            return not self._gates_pending

    def gates_pending(self) -> int:
        with self._cv:
            return len(self._gates_pending)

    def take_pending(self) -> np.ndarray | None:
        with self._cv:
            pending, self._pending = self._pending, None
            return pending

    def publish_state(self, reading: JointReading, stamp_ns: int) -> None:
        with self._cv:
            self._latest_stamp, self._latest_mono, self._answered = stamp_ns, self.clock.monotonic(), False
        self.sink.state(reading, stamp_ns)
        world = self.backend.world()
        if world is not None:
            self.sink.world(world, stamp_ns)

    def watchdog(self) -> None:
        """Hold the last target once no command has been accepted for command_timeout (counted once per lapse)."""
        if self.stats.state is not ACTIVE or self.stats.holding:
            return
        if self.clock.monotonic() - self._last_command_mono > self.config.command_timeout:
            self.stats.holding = True
            self.stats.watchdog_timeouts += 1
            self.sink.log("warn", f"no valid command for {self.config.command_timeout} s: holding the last target")
