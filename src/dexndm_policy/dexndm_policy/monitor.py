"""Rotation monitor metrics (no rclpy): radians rotated about the axis, time to fall, rate, latency, plot.

Definitions (docs/POLICY.md):
- Run time is the driver's clock: the stamps of /leap_hand/joint_states, from the first state received
  after the first HandCommand (so node start-up and DDS matching do not count; sim time under the sim
  backend, so `duration` is in sim seconds even at realtime_factor 0).
- rot_rad: sum over consecutive object poses of the incremental rotation (world frame, rotation vector)
  projected on the axis in the world (the palm-frame axis of the latest PolicyStep turned by the wrist
  orientation); counted until the object falls. Positive = right-handed about the axis.
- Fallen: the object's centre is more than `fall_distance` (m) from where it was at the first pose.
  ttf_s: run time from the start to the first fallen pose; the whole run time if it never fell (fell=0).
- rate_hz: HandCommands received per wall-clock second between the first and the last one.
- latency: from the driver writing a joint state (its DDS source timestamp) to this node receiving the
  HandCommand that answers it (DDS reception timestamp; matched by state_stamp): state hop + policy +
  command hop, on the system clock of one machine, whatever clock the stamps use (sim time included).
- Without object poses (real hardware) rot_rad and ttf_s are nan.
- track_err_rad (when the node is given a reference, dexndm_policy.source_reference): mean over ticks and
  joints of |q_t - q_t^source|, the measured joint trajectory (from the state the first command answered)
  against the base policy run closed-loop in the source world from the same first state; the joint
  tracking error of the sim-to-sim study, for this one run.

Memory is bounded however long the run: running sums, a fixed-size latency reservoir (exact up to
100,000 commands), traces decimated to at most 2,000 points for the plot, and the first `max_positions`
joint states of the run (72,000 = an hour at 20 Hz) for the tracking error.
"""
from __future__ import annotations

import math

import numpy as np

from dexndm_description.axes import parse_axis
from dexndm_description.wrist import parse_wrist, quat_to_matrix


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of quaternions (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def rotation_vector(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, rad, angle in [0, pi]) of a unit quaternion (x, y, z, w)."""
    q = q if q[3] >= 0 else -q
    s = float(np.linalg.norm(q[:3]))
    if s < 1e-12:
        return np.zeros(3)
    return q[:3] / s * 2.0 * math.atan2(s, q[3])


class DecimatedTrace:
    """At most `max_points` samples (t, value) spread over the whole run, in bounded memory: when full,
    every other sample is dropped and from then on only every `stride`-th one is kept (for the plot)."""

    def __init__(self, max_points: int = 2000):
        self.max_points = max(2, int(max_points))
        self.times: list[float] = []
        self.values: list = []
        self.stride = 1
        self._seen = 0

    def append(self, t: float, value) -> None:
        if self._seen % self.stride == 0:
            self.times.append(t)
            self.values.append(value)
            if len(self.times) >= self.max_points:
                self.times, self.values, self.stride = self.times[::2], self.values[::2], self.stride * 2
        self._seen += 1

    def __len__(self) -> int:
        return len(self.times)


class Reservoir:
    """Latency samples for the percentiles: all of them up to `capacity`, then a uniform random sample
    of that size (reservoir sampling, seeded), so the memory stays fixed however long the run."""

    def __init__(self, capacity: int = 100_000, seed: int = 0):
        self.samples = np.empty(max(1, int(capacity)))
        self.count = 0
        self._rng = np.random.default_rng(seed)

    def add(self, value: float) -> None:
        if self.count < len(self.samples):
            self.samples[self.count] = value
        else:
            slot = int(self._rng.integers(0, self.count + 1))
            if slot < len(self.samples):
                self.samples[slot] = value
        self.count += 1

    def values(self) -> np.ndarray:
        return self.samples[:min(self.count, len(self.samples))]


class _BoundedMap(dict):
    """A dict that forgets its oldest entries beyond `limit` (unmatched states or commands)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            del self[next(iter(self))]


class RotationMonitor:
    """Running metrics in bounded memory: the rotation, fall, rate and latency figures are kept as
    running values, latencies in a fixed-size reservoir, and the plot's traces decimated."""

    def __init__(self, duration_s: float, axis="z", wrist="palm_up", fall_distance: float = 0.08,
                 trace_points: int = 2000, latency_samples: int = 100_000, match_window: int = 1000,
                 max_positions: int = 72_000):
        self.duration_s = duration_s
        self.axis_palm = parse_axis(axis)
        self.wrist = parse_wrist(wrist)
        self.fall_distance = fall_distance
        self.start: float | None = None  # stamp of the first state after the first command, s
        self.commanded = False  # a HandCommand has been seen
        self.states_seen = 0
        self.now = 0.0  # latest run time, s
        # Matching a state (when the driver wrote it) with the command answering it (when it arrived):
        # only the last `match_window` unmatched ones of each are kept.
        self._state_wall = _BoundedMap(match_window)
        self._command_wall = _BoundedMap(match_window)
        self._answered = _BoundedMap(match_window)  # state stamps already counted as commanded
        self.latency_ms = Reservoir(latency_samples)
        self.commands = 0
        self._first_command_wall = math.inf
        self._last_command_wall = -math.inf
        self.targets = DecimatedTrace(trace_points)  # run time -> joint targets [16]
        self.angle = 0.0
        self.angles = DecimatedTrace(trace_points)  # run time -> rotation so far
        self.first_position: np.ndarray | None = None
        self.last_quat: np.ndarray | None = None
        self.fell_at: float | None = None
        self.positions: dict[float, np.ndarray] = {}  # state stamp -> measured q [16] (the first max_positions)
        self.max_positions = max_positions
        self.first_command_stamp: float | None = None  # the state the policy answered first
        self.gap_errors = Reservoir(latency_samples)  # the gap monitor's mean |error| per tick, rad (when it runs)
        self.gap_out_of_range = 0

    @property
    def done(self) -> bool:
        return self.start is not None and self.now >= self.duration_s

    def on_state(self, stamp_s: float, wall_s: float, position=None) -> None:
        """A joint state stamped stamp_s (driver clock), written at wall_s (system clock), with its joint
        positions (rad, optional); ignored once done."""
        self.states_seen += 1
        if self.done:
            return
        if position is not None and len(self.positions) < self.max_positions:
            self.positions[stamp_s] = np.asarray(position, dtype=float)
        if stamp_s in self._command_wall:  # its command came first
            self.latency_ms.add((self._command_wall.pop(stamp_s) - wall_s) * 1e3)
        else:
            self._state_wall[stamp_s] = wall_s
        if self.start is None:
            if not self.commanded:
                return
            self.start = stamp_s
        self.now = stamp_s - self.start

    def on_command(self, state_stamp_s: float, wall_s: float, targets) -> None:
        """A command answering the state stamped state_stamp_s, received at wall_s (system clock)."""
        self.commanded = True
        if self.first_command_stamp is None or state_stamp_s < self.first_command_stamp:
            self.first_command_stamp = state_stamp_s
        if self.start is None or state_stamp_s < self.start or (self.done and state_stamp_s - self.start > self.now):
            return
        if state_stamp_s in self._answered:
            return
        self._answered[state_stamp_s] = True
        self.commands += 1
        self._first_command_wall = min(self._first_command_wall, wall_s)
        self._last_command_wall = max(self._last_command_wall, wall_s)
        if state_stamp_s in self._state_wall:
            self.latency_ms.add((wall_s - self._state_wall.pop(state_stamp_s)) * 1e3)
        else:
            self._command_wall[state_stamp_s] = wall_s
        self.targets.append(state_stamp_s - self.start, np.asarray(targets, dtype=float))

    def on_axis(self, axis_palm) -> None:
        self.axis_palm = parse_axis(axis_palm)

    def on_wrist(self, quat_xyzw) -> None:
        self.wrist = parse_wrist(quat_xyzw)

    def on_object_pose(self, stamp_s: float, position, quat_xyzw) -> None:
        if self.start is None or (self.done and stamp_s - self.start > self.now):
            return
        position, quat = np.asarray(position, dtype=float), np.asarray(quat_xyzw, dtype=float)
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(quat))) or np.linalg.norm(quat) < 1e-6:
            return
        quat = quat / np.linalg.norm(quat)
        if self.first_position is None:
            self.first_position = position
        elif self.fell_at is None:
            increment = rotation_vector(quat_multiply(quat, self.last_quat * np.array([-1, -1, -1, 1])))
            self.angle += float(increment @ (quat_to_matrix(self.wrist) @ self.axis_palm))
            if np.linalg.norm(position - self.first_position) > self.fall_distance:
                self.fell_at = stamp_s - self.start
        self.last_quat = quat
        self.angles.append(stamp_s - self.start, self.angle)

    def on_gap(self, state_stamp_s: float, mean_abs_error: float, out_of_range: bool) -> None:
        """One tick of the reality-gap monitor (DynamicsGap), predicted from the state stamped state_stamp_s."""
        if self.start is None or state_stamp_s < self.start or (self.done and state_stamp_s - self.start > self.now):
            return
        self.gap_errors.add(float(mean_abs_error))
        self.gap_out_of_range += int(bool(out_of_range))

    def summary(self) -> dict[str, float]:
        has_object = self.first_position is not None
        span = self._last_command_wall - self._first_command_wall
        rate = (self.commands - 1) / span if self.commands > 1 and span > 0 else math.nan
        lat = self.latency_ms.values() if self.latency_ms.count else np.full(1, np.nan)
        return {
            "rot_rad": self.angle if has_object else math.nan,
            "ttf_s": (self.fell_at if self.fell_at is not None else self.now) if has_object else math.nan,
            "rate_hz": rate,
            "latency_p50_ms": float(np.percentile(lat, 50)),
            "latency_p99_ms": float(np.percentile(lat, 99)),
            "fell": int(self.fell_at is not None),
            "commands": self.commands,
            "run_s": self.now,
            **self._gap_summary(),
        }

    def joint_trajectory(self) -> np.ndarray:
        """[T + 1, 16] measured q of the run's states in stamp order, from the state the first command answered
        to the end of the run (empty when no state with positions was seen)."""
        if self.first_command_stamp is None or self.start is None:
            return np.zeros((0, 16))
        end = self.start + self.now
        stamps = sorted(s for s in self.positions if self.first_command_stamp <= s <= end + 1e-9)
        return np.array([self.positions[s] for s in stamps]).reshape(len(stamps), -1)

    def _gap_summary(self) -> dict[str, float]:
        """Gap figures, only when the gap monitor published: mean / p95 over ticks of the mean |error|."""
        if not self.gap_errors.count:
            return {}
        errors = 1e3 * self.gap_errors.values()
        return {"gap_mean_mrad": float(errors.mean()), "gap_p95_mrad": float(np.percentile(errors, 95)),
                "gap_ticks": self.gap_errors.count, "gap_out_of_range": self.gap_out_of_range}

    @staticmethod
    def format(summary: dict[str, float]) -> str:
        return " ".join(f"{k}={v}" if isinstance(v, int) else f"{k}={v:.4f}" for k, v in summary.items())

    def plot(self, path: str) -> None:
        """Rotation angle and joint targets over run time, as a PNG (matplotlib, Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        from dexndm_description import hand

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        if self.angles:
            top.plot(self.angles.times, self.angles.values, color="tab:blue")
        else:
            top.text(0.5, 0.5, "no object pose (hardware): rotation not measured", ha="center", transform=top.transAxes)
        if self.fell_at is not None:
            top.axvline(self.fell_at, color="tab:red", linestyle="--", label="object fell")
            top.legend(loc="upper left")
        top.set_ylabel("rotation about axis (rad)")
        if self.targets:
            targets = np.stack(self.targets.values)
            for j in range(targets.shape[1]):
                bottom.plot(self.targets.times, targets[:, j], linewidth=0.8, label=hand.JOINT_NAMES[j])
            bottom.legend(ncol=1, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        bottom.set_ylabel("joint target (rad)")
        bottom.set_xlabel("time (s, driver clock)")
        fig.tight_layout()
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
