"""The viewer's core (no rclpy): the hand's runtime data, logged to a rerun RecordingStream.

Entities (palm frame = `/world/palm`, world z up, lengths m, angles rad):

| entity | what | when |
|---|---|---|
| `/world/palm` | Transform3D: palm in the world (`scene.HAND_ORIGIN`, wrist orientation) | first state, wrist changes |
| `/world/palm/links/<link>` | Transform3D: link pose in the palm frame, forward kinematics of the state | every state |
| `/world/palm/links/<link>/<geom>` | the MJCF collision primitive (static, in the link frame) | once |
| `/world/palm/axis` | Arrows3D: the rotation axis (palm frame) from the grasp spot | axis changes |
| `/world/object` | Transform3D: object pose (world frame), axes; `/world/object/shape` nominal shape of its set | every pose |
| `/joints/<joint>` | Scalars [position, executed target, base target, residual] (rad) | every state |
| `/rotation/about_axis` | Scalars: object rotation about the axis since the first pose (rad) | every pose |
| `/policy/timing` | Scalars [state->command latency, inference] (ms) | every command / step |
| `/diagnostics/<status>/<key>`, `/diagnostics/log` | numeric diagnostic values; level changes as text | each report |
| `/events` | TextLog (episodes) | each event |

Rows are keyed by the joint state's stamp: the command, policy step and object pose answering a state
(same stamp) join its row, also when one overtakes its state (topics are not ordered with each other).
Rows are buffered and sent as columns (`send_columns`, one call per entity
per flush), so a 20 Hz graph costs a few dozen calls per flush, not per tick. A row is sent once it is
complete (its command, and its policy step and object pose when the graph has those), when
`MAX_PENDING_ROWS` newer rows wait behind it (an answer that never came), or at `flush(final=True)`. Timelines are
the caller's: `Times` is a tuple of (timeline, kind, value) with kind sequence | duration (s) | timestamp (s).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import rerun as rr

from dexndm_description import hand, mjcf
from dexndm_description.axes import parse_axis
from dexndm_description.scene import HAND_ORIGIN
from dexndm_description.wrist import parse_wrist, quat_to_matrix
from dexndm_policy.monitor import quat_multiply, rotation_vector
from dexndm_viz.hand_model import Geom, HandGeometry

Times = tuple[tuple[str, str, float], ...]

JOINT_SERIES = ("position", "executed target", "base target", "residual")
JOINT_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))
TIMING_SERIES = ("state->command latency (ms)", "inference (ms)")
OBJECT_RGBA = (217, 115, 38, 230)
AXIS_LENGTH = 0.1  # m, drawn length of the rotation axis arrow
_DIAG_LEVELS = {0: "INFO", 1: "WARN", 2: "ERROR", 3: "ERROR"}
MAX_PENDING_ROWS = 40  # a row still missing an answer is sent anyway once this many newer rows wait
MAX_EARLY_STAMPS = 50  # answers held for states not seen yet


def slug(text: str) -> str:
    """An entity path part from a free-form name ("hand_driver: bus" -> "hand_driver_bus")."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "_"


class _Arrow:
    """A ready pyarrow array as a rerun ComponentBatchLike (skips the archetype layer's per-call work)."""

    def __init__(self, array: pa.Array):
        self.array = array

    def as_arrow_array(self) -> pa.Array:
        return self.array


def _descriptors(columns) -> dict[str, tuple]:
    """{component name: (descriptor, arrow type)} of an archetype's columns."""
    return {str(c.component_descriptor().component): (c.component_descriptor(), c.as_arrow_array().type.value_type)
            for c in columns}


class _Columns:
    """Builds Transform3D and Scalars columns straight from numpy (one pyarrow array per component)."""

    def __init__(self):
        self.transform = _descriptors(rr.Transform3D.columns(translation=[[0.0, 0.0, 0.0]], quaternion=[[0.0, 0.0, 0.0, 1.0]]))
        self.scalars = _descriptors(rr.Scalars.columns(scalars=[0.0]))

    def pose(self, translation: np.ndarray, quaternion: np.ndarray) -> list[rr.ComponentColumn]:
        out = []
        for name, values, width in (("Transform3D:translation", translation, 3), ("Transform3D:quaternion", quaternion, 4)):
            descriptor, arrow_type = self.transform[name]
            flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).ravel(), type=arrow_type.value_type)
            out.append(rr.ComponentColumn(descriptor, _Arrow(pa.FixedSizeListArray.from_arrays(flat, width))))
        return out

    def series(self, values: np.ndarray) -> list[rr.ComponentColumn]:
        """values [n, k]: k scalars per row."""
        descriptor, arrow_type = self.scalars["Scalars:scalars"]
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        offsets = np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)
        return [rr.ComponentColumn(descriptor, _Arrow(pa.array(values.ravel(), type=arrow_type)), offsets=offsets)]


def _time_columns(times: list[Times]) -> list[rr.TimeColumn]:
    columns = []
    for k, (name, kind, _) in enumerate(times[0]):
        values = [t[k][2] for t in times]
        columns.append(rr.TimeColumn(name, **{kind: values}))
    return columns


@dataclass
class _Row:
    times: Times
    q: np.ndarray
    executed: np.ndarray | None = None
    base: np.ndarray | None = None
    residual: np.ndarray | None = None
    latency_ms: float = math.nan
    inference_ms: float = math.nan
    object_pose: np.ndarray | None = None  # [7] xyz + xyzw, world
    rotation: float | None = None
    commanded: bool = False  # the HandCommand itself came (a step's executed target is only a stand-in)


@dataclass
class RecorderStats:
    states: int = 0
    commands: int = 0
    steps: int = 0
    poses: int = 0
    unmatched: int = 0  # answers whose state was already sent or never seen
    flushes: int = 0
    flush_ms_max: float = 0.0
    flush_ms_total: float = 0.0
    rows_sent: int = 0
    extra: dict = field(default_factory=dict)


class HandRecorder:
    """Log states, commands, policy steps, object poses, diagnostics and events to `stream`."""

    def __init__(self, stream: rr.RecordingStream, object_set: str | None = None, wrist="palm_up", axis="z",
                 geometry: HandGeometry | None = None):
        self.stream = stream
        self.geometry = geometry or HandGeometry()
        self.stats = RecorderStats()
        self.wrist = parse_wrist(wrist)
        self.axis = parse_axis(axis)
        self._rows: dict[int, _Row] = {}  # stamp ns -> row, in arrival order
        self._newest: int | None = None
        self._wrist_logged: np.ndarray | None = None  # the wrist and axis last logged (the arrays themselves:
        self._axis_logged: np.ndarray | None = None  # set_wrist and add_step replace them only when they change)
        self._wrist_given: tuple | None = None  # the last quaternion / axis given, as given (cheap change checks)
        self._axis_given: tuple | None = None
        self._world_axis: np.ndarray | None = None  # the axis in the world frame, for the rotation about it
        self._last_quat: np.ndarray | None = None
        self._angle = 0.0
        self._diag_messages: dict[str, tuple[int, str]] = {}
        self._last_times: Times | None = None  # timelines of the newest state
        self._columns = _Columns()
        self._early: dict[int, list] = {}  # stamp -> answers that came before their state
        self._log_static(object_set)

    # ---- static content ----------------------------------------------------------------------
    def _log_static(self, object_set: str | None) -> None:
        log = self.stream.log
        log("/world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        for link, geoms in self.geometry.geoms.items():
            for geom in geoms:
                log(f"/world/palm/links/{link}/{geom.name}", _primitive(geom), static=True)
        for name in hand.JOINT_NAMES:
            log(f"/joints/{name}", rr.SeriesLines(names=list(JOINT_SERIES), colors=list(JOINT_COLORS)), static=True)
        log("/rotation/about_axis", rr.SeriesLines(names=["rotation about the axis (rad)"]), static=True)
        log("/policy/timing", rr.SeriesLines(names=list(TIMING_SERIES)), static=True)
        log("/world/object", rr.TransformAxes3D(axis_length=0.03), static=True)
        if object_set:
            shape = _object_shape(object_set)
            if shape is not None:
                log("/world/object/shape", shape, static=True)

    # ---- inputs ------------------------------------------------------------------------------
    def add_state(self, times: Times, stamp_ns: int, q) -> None:
        """A joint state (rad, motor-ID order) stamped stamp_ns; opens its row."""
        q = np.asarray(q, dtype=float)
        if q.shape != (hand.NUM_JOINTS,) or not np.all(np.isfinite(q)):
            return
        self.stats.states += 1
        if self._wrist_logged is not self.wrist:
            self._log_at(times, "/world/palm", rr.Transform3D(translation=HAND_ORIGIN, quaternion=self.wrist))
            self._wrist_logged = self.wrist
        if self._axis_logged is not self.axis:
            self._log_at(times, "/world/palm/axis", rr.Arrows3D(
                origins=[mjcf.GRASP_SPOT], vectors=[AXIS_LENGTH * self.axis], colors=[(200, 30, 200)],
                labels=["axis"]))
            self._axis_logged = self.axis
        row = self._rows[stamp_ns] = _Row(times, q)
        self._newest, self._last_times = stamp_ns, times
        for join in self._early.pop(stamp_ns, []):
            join(row)
        for stale in [s for s in self._early if s < stamp_ns]:  # answers to states this recorder never saw
            self.stats.unmatched += len(self._early.pop(stale))

    def add_command(self, state_stamp_ns: int, target, latency_ms: float = math.nan) -> None:
        """The command answering the state stamped state_stamp_ns (its executed target, rad)."""
        self.stats.commands += 1
        target = np.asarray(target, dtype=float)

        def join(row: _Row) -> None:
            row.executed, row.latency_ms, row.commanded = target, latency_ms, True
        self._join(state_stamp_ns, join)

    def add_step(self, state_stamp_ns: int, base, residual, executed, axis, inference_ms: float) -> None:
        """A PolicyStep: base target, residual, executed target (rad), axis (palm frame), inference (ms)."""
        self.stats.steps += 1
        given = tuple(axis)
        if given != self._axis_given:
            self._axis_given = given
            try:
                parsed = parse_axis(list(given))
            except ValueError:
                parsed = self.axis
            if not np.allclose(parsed, self.axis):
                self.axis, self._world_axis = parsed, None
        base, residual, executed = (np.asarray(v, dtype=float) for v in (base, residual, executed))

        def join(row: _Row) -> None:
            row.base, row.residual, row.inference_ms = base, residual, float(inference_ms)
            if row.executed is None:
                row.executed = executed
        self._join(state_stamp_ns, join)

    def add_object_pose(self, stamp_ns: int, position, quat_xyzw) -> None:
        """Object pose (world frame) at the state stamped stamp_ns; integrates the rotation about the axis."""
        pose = np.concatenate([np.asarray(position, dtype=float), np.asarray(quat_xyzw, dtype=float)])
        if pose.shape != (7,) or not np.all(np.isfinite(pose)) or np.linalg.norm(pose[3:]) < 1e-6:
            return
        self.stats.poses += 1
        pose[3:] /= np.linalg.norm(pose[3:])
        if self._last_quat is not None:
            if self._world_axis is None:
                self._world_axis = quat_to_matrix(self.wrist) @ self.axis
            increment = rotation_vector(quat_multiply(pose[3:], self._last_quat * np.array([-1, -1, -1, 1])))
            self._angle += float(increment @ self._world_axis)
        self._last_quat = pose[3:]
        angle = self._angle

        def join(row: _Row) -> None:
            row.object_pose, row.rotation = pose, angle
        self._join(stamp_ns, join)

    def set_wrist(self, quat_xyzw) -> None:
        given = tuple(quat_xyzw)
        if given == self._wrist_given:  # a wrist orientation comes with every state in simulation
            return
        self._wrist_given = given
        parsed = parse_wrist(list(given))
        if not np.allclose(parsed, self.wrist):
            self.wrist, self._world_axis = parsed, None

    def log_diagnostics(self, statuses) -> None:
        """Each status (level, name, message, {key: value}): numeric values as scalars, level changes as text."""
        times = self._last_times
        if times is None:  # nothing to place it at yet
            return
        for level, name, message, values in statuses:
            base = f"/diagnostics/{slug(name)}"
            self._log_at(times, f"{base}/level", rr.Scalars(float(level)))
            for key, value in values.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(number):
                    self._log_at(times, f"{base}/{slug(key)}", rr.Scalars(number))
            if self._diag_messages.get(name) != (level, message):
                self._diag_messages[name] = (level, message)
                self._log_at(times, "/diagnostics/log", rr.TextLog(f"{name}: {message}",
                                                                    level=_DIAG_LEVELS.get(int(level), "INFO")))

    def log_event(self, times: Times, text: str, level: str = "INFO") -> None:
        self._log_at(times, "/events", rr.TextLog(text, level=level))

    # ---- output ------------------------------------------------------------------------------
    def flush(self, final: bool = False) -> int:
        """Send the complete rows (all when final) as columns; returns how many rows were sent."""
        started = time.perf_counter()
        pending = list(self._rows)
        count = len(pending) if final else 0
        while count < len(pending) and (self._complete(self._rows[pending[count]])
                                        or len(pending) - count > MAX_PENDING_ROWS):
            count += 1
        rows = [self._rows.pop(s) for s in pending[:count]]
        groups: list[list[_Row]] = []
        for row in rows:  # consecutive rows with the same timelines go together
            if groups and [t[:2] for t in groups[-1][0].times] == [t[:2] for t in row.times]:
                groups[-1].append(row)
            else:
                groups.append([row])
        for group in groups:
            self._send(group)
        elapsed = 1e3 * (time.perf_counter() - started)
        if rows:
            self.stats.flushes += 1
            self.stats.rows_sent += len(rows)
            self.stats.flush_ms_total += elapsed
            self.stats.flush_ms_max = max(self.stats.flush_ms_max, elapsed)
        return len(rows)

    def _send(self, rows: list[_Row]) -> None:
        send, cols = self.stream.send_columns, self._columns
        index = _time_columns([r.times for r in rows])
        nan = np.full(hand.NUM_JOINTS, np.nan)
        q = np.stack([r.q for r in rows])
        series = np.stack([q] + [np.stack([getattr(r, a) if getattr(r, a) is not None else nan for r in rows])
                                 for a in ("executed", "base", "residual")], axis=2)  # [n, 16, 4]
        for j, name in enumerate(hand.JOINT_NAMES):
            send(f"/joints/{name}", indexes=index, columns=cols.series(series[:, j]))
        pos, quat = self.geometry.batch_link_poses(q)
        for k, link in enumerate(self.geometry.links[1:], start=1):  # the palm is the frame itself
            send(f"/world/palm/links/{link}", indexes=index, columns=cols.pose(pos[:, k], quat[:, k]))
        timing = [i for i, r in enumerate(rows) if math.isfinite(r.latency_ms) or math.isfinite(r.inference_ms)]
        if timing:
            values = np.array([[rows[i].latency_ms, rows[i].inference_ms] for i in timing])
            send("/policy/timing", indexes=_time_columns([rows[i].times for i in timing]), columns=cols.series(values))
        posed = [i for i, r in enumerate(rows) if r.object_pose is not None]
        if posed:
            poses = np.stack([rows[i].object_pose for i in posed])
            sub = _time_columns([rows[i].times for i in posed])
            send("/world/object", indexes=sub, columns=cols.pose(poses[:, :3], poses[:, 3:]))
            send("/rotation/about_axis", indexes=sub, columns=cols.series([[rows[i].rotation] for i in posed]))

    @property
    def pending(self) -> int:
        """Rows buffered, not sent yet."""
        return len(self._rows)

    @property
    def latest_times(self) -> Times | None:
        """Timelines of the newest state (for logging events and diagnostics at the current tick)."""
        return self._last_times

    # ---- helpers -----------------------------------------------------------------------------
    def _complete(self, row: _Row) -> bool:
        """Every answer this graph gives has joined the row (a command; a step and a pose where they exist)."""
        return (row.commanded and (row.base is not None or not self.stats.steps)
                and (row.object_pose is not None or not self.stats.poses))

    def _join(self, stamp_ns: int, join) -> None:
        """Apply `join` to the row of stamp_ns; an answer that overtook its state (topics are not ordered
        with each other) waits for it, a few at most."""
        row = self._rows.get(stamp_ns)
        if row is not None:
            join(row)
        elif self._newest is None or stamp_ns > self._newest:
            self._early.setdefault(stamp_ns, []).append(join)
            while len(self._early) > MAX_EARLY_STAMPS:
                self.stats.unmatched += len(self._early.pop(min(self._early)))
        else:
            self.stats.unmatched += 1

    def _log_at(self, times: Times, path: str, archetype) -> None:
        for name, kind, value in times:
            self.stream.set_time(name, **{kind: value})
        self.stream.log(path, archetype)


def _primitive(geom: Geom):
    """A rerun archetype drawing one MuJoCo geom in its link frame (solid, the model's colour)."""
    color = [tuple(int(round(255 * c)) for c in geom.rgba)]
    if geom.kind == "box":
        return rr.Boxes3D(centers=[geom.pos], half_sizes=[geom.size[:3]], quaternions=[geom.quat], colors=color,
                          fill_mode=rr.components.FillMode.Solid)
    if geom.kind == "capsule":  # MuJoCo: centred, along local z; rerun: from the origin along +z
        radius, half = float(geom.size[0]), float(geom.size[1])
        start = geom.pos - quat_to_matrix(geom.quat) @ np.array([0.0, 0.0, half])
        return rr.Capsules3D(lengths=[2 * half], radii=[radius], translations=[start], quaternions=[geom.quat],
                             colors=color, fill_mode=rr.components.FillMode.Solid)
    if geom.kind == "cylinder":
        return rr.Cylinders3D(lengths=[2 * float(geom.size[1])], radii=[float(geom.size[0])], centers=[geom.pos],
                              quaternions=[geom.quat], colors=color, fill_mode=rr.components.FillMode.Solid)
    half_sizes = [geom.size[:1].repeat(3)] if geom.kind == "sphere" else [geom.size[:3]]
    return rr.Ellipsoids3D(centers=[geom.pos], half_sizes=half_sizes, quaternions=[geom.quat], colors=color,
                           fill_mode=rr.components.FillMode.Solid)


def _object_shape(object_set: str):
    """The set's nominal (middle-sized) object, in the object frame; the run's randomized size is not published."""
    from dexndm_description.objects import sample_shape

    spec = sample_shape(object_set, np.random.default_rng(0), nominal=True)
    half = 0.5 * spec.extents
    label = [f"{object_set} (nominal size)"]
    if spec.kind == "cylinder":  # long axis = object y, as in scene.py
        return rr.Cylinders3D(lengths=[spec.extents[1]], radii=[half[0]], quaternions=[(-math.sqrt(0.5), 0, 0, math.sqrt(0.5))],
                              colors=[OBJECT_RGBA], labels=label, fill_mode=rr.components.FillMode.Solid)
    if spec.kind == "box":
        return rr.Boxes3D(half_sizes=[half], colors=[OBJECT_RGBA], labels=label, fill_mode=rr.components.FillMode.Solid)
    from scipy.spatial import ConvexHull

    hull = ConvexHull(spec.vertices)
    return rr.Mesh3D(vertex_positions=spec.vertices, triangle_indices=hull.simplices, albedo_factor=OBJECT_RGBA)
