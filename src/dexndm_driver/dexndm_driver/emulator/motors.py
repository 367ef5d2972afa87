"""Motor models behind the emulated servos: what Present Position/Velocity/Current read.

A model receives goal positions and torque flags (sim rad, motor-ID order) and is asked for the
state at a wall-clock time (time.monotonic() seconds). All calls come from the emulator thread.
"""
from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from dexndm_description import hand


class MotorModel(Protocol):
    """What the emulated servos need from their motors."""

    def set_goal(self, goal: np.ndarray, now: float) -> None:
        """New goal positions (rad, [16]) from now on."""

    def set_torque(self, enabled: np.ndarray, now: float) -> None:
        """Torque on/off per motor ([16] bool); a motor without torque is limp."""

    def state(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position rad, velocity rad/s, current A), each [16], at time now."""

    def reset(self, q: np.ndarray, now: float) -> None:
        """Put the motors at q (rad) with zero velocity."""


class _GoalAndTorque:
    """Goal and torque registers shared by the motor models; each model defines _advance(now)."""

    _goal: np.ndarray
    _torque: np.ndarray

    def _advance(self, now: float) -> None:
        raise NotImplementedError

    def set_goal(self, goal: np.ndarray, now: float) -> None:
        self._advance(now)
        self._goal = np.asarray(goal, dtype=float).copy()

    def set_torque(self, enabled: np.ndarray, now: float) -> None:
        self._advance(now)
        self._torque = np.asarray(enabled, dtype=bool).copy()


class FirstOrderMotors(_GoalAndTorque):
    """Position servos as a first-order lag: q -> goal with time constant tau (s), current ~ error.

    Enough for wire tests: positions move toward goals, are exact at rest, and current is
    `current_per_rad * (goal - q)` clipped to `current_limit` (A).
    """

    def __init__(self, q0: np.ndarray | None = None, tau: float = 0.04, current_per_rad: float = 0.5,
                 current_limit: float = 0.35) -> None:
        self.tau = tau
        self.current_per_rad = current_per_rad
        self.current_limit = current_limit
        self._q = np.array(hand.CANONICAL_POSE if q0 is None else q0, dtype=float)
        self._goal = self._q.copy()
        self._torque = np.zeros(hand.NUM_JOINTS, dtype=bool)
        self._t: float | None = None

    def _advance(self, now: float) -> None:
        if self._t is not None and now > self._t:
            decay = np.exp(-(now - self._t) / self.tau)
            self._q = np.where(self._torque, self._goal + (self._q - self._goal) * decay, self._q)
        self._t = now if self._t is None else max(self._t, now)

    def state(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._advance(now)
        error = np.where(self._torque, self._goal - self._q, 0.0)
        current = np.clip(self.current_per_rad * error, -self.current_limit, self.current_limit)
        return self._q.copy(), error / self.tau, current

    def reset(self, q: np.ndarray, now: float) -> None:
        self._q = np.asarray(q, dtype=float).copy()
        self._goal = self._q.copy()
        self._t = now


class PhysicsMotors(_GoalAndTorque):
    """Motors driven by the target world (dexndm_description.sim.BatchedHandSim, one env).

    Physics advances by wall clock: each 50 ms of monotonic time since start is one sim.step()
    with the goals current at that moment (a limp motor's goal is its present position). If the
    caller falls more than `max_catch_up` ticks behind, the backlog is dropped (counted in
    `dropped_ticks`) rather than run in a burst. Object pose and wrist are readable from any thread.
    """

    def __init__(self, sim, q0: np.ndarray | None = None, max_catch_up: int = 10, has_object: bool = True) -> None:
        self.sim = sim
        self.has_object = has_object
        self.max_catch_up = max_catch_up
        self.dropped_ticks = 0
        self._lock = threading.Lock()
        q0 = np.array(hand.CANONICAL_POSE if q0 is None else q0, dtype=float)
        self.sim.reset(q=q0[None, :])
        self._goal = q0.copy()
        self._torque = np.zeros(hand.NUM_JOINTS, dtype=bool)
        self._t0: float | None = None
        self._ticks = 0

    def _advance(self, now: float) -> None:
        if self._t0 is None:
            self._t0 = now
            return
        due = int((now - self._t0) / hand.CONTROL_DT)
        if due - self._ticks > self.max_catch_up:
            self.dropped_ticks += due - self._ticks - self.max_catch_up
            self._ticks = due - self.max_catch_up
        with self._lock:
            while self._ticks < due:
                q = self.sim.q[0]
                self.sim.set_targets(np.where(self._torque, self._goal, q)[None, :])
                self.sim.step()
                self._ticks += 1

    def state(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._advance(now)
        with self._lock:
            return (np.array(self.sim.q[0], dtype=float), np.array(self.sim.qdot[0], dtype=float),
                    np.array(self.sim.joint_effort[0], dtype=float))

    def reset(self, q: np.ndarray, now: float) -> None:
        with self._lock:
            self.sim.reset(q=np.asarray(q, dtype=float)[None, :])
        self._goal = np.asarray(q, dtype=float).copy()
        self._t0, self._ticks = now, 0

    def world_state(self) -> dict:
        """Object pose [7] (xyz, quat xyzw) or None, wrist quaternion [4], sim time (s)."""
        with self._lock:
            pose = np.array(self.sim.object_pose[0], dtype=float) if self.has_object else None
            return {"object_pose": pose, "wrist_quat": np.array(self.sim.wrist_quat[0], dtype=float),
                    "time": float(self.sim.time[0])}
