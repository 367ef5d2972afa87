"""The live reality-gap monitor's core (no rclpy): the joint-wise dynamics model beside the running policy.

Per tick t the policy answers the state q_t with an executed target a_t (PolicyStep, matched to the state by
`state_stamp`). The monitor pushes (q_t, a_t) into each joint's W-step window, runs dynamics.onnx on it and,
when the next state q_{t+1} arrives, reports each joint's one-step error `q_{t+1} - next_q` (rad). A window
restarts after a break: a state the policy did not answer, or a skipped tick (states more than
`max_tick_gap` s apart); no error is reported until W pairs are in. Every pair is checked against the
per-joint ranges in the model's metadata (widened by `range_margin` rad): outside them the prediction is an
extrapolation, and the tick says so per joint.

States and steps may arrive in either order (two topics): each is kept until its partner comes.
"""
from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dexndm_description import hand
from dexndm_policy import contract
from dexndm_policy.runtime import default_models_dir, session_options

DYNAMICS_FILE = "dynamics.onnx"
WARMUP_RUNS = 5
HOW_TO_MAKE = ("train the joint-wise dynamics model and export it per the dynamics.onnx contract "
               "(`dexndm-train dynamics --export`, DESIGN.md) to src/dexndm_policy/models/dynamics.onnx, then rerun "
               "scripts/setup.sh to install it; or give the file with gap_model:=PATH (node parameter `model`)")


class DynamicsModelNotFoundError(FileNotFoundError):
    """No dynamics.onnx where one was asked for; the message says how to make one."""


def default_dynamics_path() -> Path:
    """The installed dynamics.onnx (share/dexndm_policy/models), else the source tree's copy."""
    for folder in (default_models_dir(), Path(__file__).resolve().parents[1] / "models"):
        if (folder / DYNAMICS_FILE).is_file():
            return folder / DYNAMICS_FILE
    return default_models_dir() / DYNAMICS_FILE


class DynamicsModel:
    """dynamics.onnx on a single-threaded, warmed-up onnxruntime session, its contract checked."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_dynamics_path()
        if not self.path.is_file():
            raise DynamicsModelNotFoundError(f"no dynamics model at {self.path}: {HOW_TO_MAKE}")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=session_options(),
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable files
            raise contract.ModelContractError(f"{self.path}: onnxruntime cannot load it ({err}); is it an ONNX file?") from None
        inputs = [contract.TensorSpec(i.name, tuple(i.shape)) for i in self.session.get_inputs()]
        outputs = [contract.TensorSpec(o.name, tuple(o.shape)) for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.spec = contract.check_dynamics_model(self.metadata, inputs, outputs, str(self.path))
        self.window = self.spec.window
        zeros = np.zeros((1, hand.NUM_JOINTS, self.window, 2), np.float32)
        for _ in range(WARMUP_RUNS):
            self.session.run(None, {contract.DYNAMICS_INPUT: zeros})

    def predict(self, history: np.ndarray) -> np.ndarray:
        """next_q [N, 16] rad from history [N, 16, W, 2] (q, executed target) pairs, oldest first."""
        feed = np.ascontiguousarray(history, dtype=np.float32)
        return self.session.run(None, {contract.DYNAMICS_INPUT: feed})[0].astype(float)


@dataclass
class GapTick:
    """One evaluated prediction. Stamps are int ns of the states' header stamps."""

    stamp: int  # q_{t+1}
    source_stamp: int  # q_t
    predicted: np.ndarray  # [16] rad
    measured: np.ndarray  # [16] rad
    error: np.ndarray  # [16] measured - predicted, rad
    out_of_range: np.ndarray  # [16] bool, over the window's pairs
    inference_ms: float

    @property
    def mean_abs_error(self) -> float:
        return float(np.mean(np.abs(self.error)))


@dataclass
class _Pending:
    stamp: int
    predicted: np.ndarray
    out_of_range: np.ndarray
    inference_ms: float


class GapMonitor:
    """Feeds states and executed targets to a DynamicsModel; on_state/on_step return the ticks they complete."""

    def __init__(self, model: DynamicsModel, range_margin: float = 0.02, max_tick_gap: float = 0.075,
                 keep: int = 64, recent: int = 200):
        if range_margin < 0 or max_tick_gap <= 0:
            raise ValueError("range_margin must be >= 0 rad and max_tick_gap > 0 s")
        self.model = model
        self.max_gap_ns = int(max_tick_gap * 1e9)
        spec = model.spec
        self._low = np.stack([spec.position_range[:, 0], spec.target_range[:, 0]], axis=1) - range_margin  # [16, 2]
        self._high = np.stack([spec.position_range[:, 1], spec.target_range[:, 1]], axis=1) + range_margin
        self._states: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._steps: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._keep = keep
        self._window: collections.deque[np.ndarray] = collections.deque(maxlen=model.window)  # [16, 2] pairs
        self._flags: collections.deque[np.ndarray] = collections.deque(maxlen=model.window)  # [16] bool
        self._last_pushed: int | None = None
        self._pending: _Pending | None = None
        # running figures
        self.ticks = 0
        self.pairs = 0
        self.breaks = 0
        self.out_of_range_pairs = 0
        self.out_of_range_joints = np.zeros(hand.NUM_JOINTS, dtype=int)  # pairs outside, per joint
        self._abs_sum = np.zeros(hand.NUM_JOINTS)
        self._abs_max = np.zeros(hand.NUM_JOINTS)
        self.recent: collections.deque[GapTick] = collections.deque(maxlen=recent)
        self._tick_means: collections.deque[float] = collections.deque(maxlen=100_000)

    # ------------------------------------------------------------------------------------ input
    def on_state(self, stamp: int, q) -> list[GapTick]:
        """A measured state (stamp ns, q [16] rad, finite)."""
        q = _joints(q, "state")
        out = []
        if self._pending is not None and stamp > self._pending.stamp:
            out += self._evaluate(stamp, q)
        self._remember(self._states, stamp, q)
        if stamp in self._steps:
            out += self._push(stamp)
        return out

    def on_step(self, state_stamp: int, executed) -> list[GapTick]:
        """The executed target the policy sent in answer to the state stamped state_stamp (ns)."""
        self._remember(self._steps, state_stamp, _joints(executed, "executed target"))
        return self._push(state_stamp) if state_stamp in self._states else []

    # ------------------------------------------------------------------------------------ core
    def _push(self, stamp: int) -> list[GapTick]:
        q, a = self._states[stamp], self._steps.pop(stamp)
        if self._last_pushed is not None and (stamp <= self._last_pushed or stamp - self._last_pushed > self.max_gap_ns):
            self._restart()
        self._last_pushed = stamp
        pair = np.stack([q, a], axis=1)  # [16, 2]
        flags = np.any((pair < self._low) | (pair > self._high), axis=1)
        self._window.append(pair)
        self._flags.append(flags)
        self.pairs += 1
        if flags.any():
            self.out_of_range_pairs += 1
            self.out_of_range_joints += flags
        self._pending = None
        if len(self._window) < self.model.window:
            return []
        history = np.stack(self._window, axis=1)[None]  # [1, 16, W, 2]
        start = time.perf_counter()
        predicted = self.model.predict(history)[0]
        self._pending = _Pending(stamp, predicted, np.any(np.stack(self._flags), axis=0),
                                 (time.perf_counter() - start) * 1e3)
        later = [s for s in self._states if s > stamp]  # the next state may have come before this step
        return self._evaluate(min(later), self._states[min(later)]) if later else []

    def _evaluate(self, stamp: int, q: np.ndarray) -> list[GapTick]:
        pending, self._pending = self._pending, None
        if stamp - pending.stamp > self.max_gap_ns:  # a skipped tick: not a one-step prediction
            self._restart()
            return []
        tick = GapTick(stamp, pending.stamp, pending.predicted, q, q - pending.predicted, pending.out_of_range,
                       pending.inference_ms)
        self.ticks += 1
        err = np.abs(tick.error)
        self._abs_sum += err
        self._abs_max = np.maximum(self._abs_max, err)
        self._tick_means.append(float(err.mean()))
        self.recent.append(tick)
        return [tick]

    def _restart(self) -> None:
        if self._window:
            self.breaks += 1
        self._window.clear()
        self._flags.clear()
        self._pending = None

    def _remember(self, store: collections.OrderedDict, stamp: int, value: np.ndarray) -> None:
        store[stamp] = value
        while len(store) > self._keep:
            store.popitem(last=False)

    # ------------------------------------------------------------------------------------ output
    def summary(self) -> dict:
        """Figures over the whole run: per-joint mean and max |error| (rad), tick-mean percentiles, counts."""
        n = max(self.ticks, 1)
        means = np.asarray(self._tick_means) if self._tick_means else np.full(1, np.nan)
        per_joint = self._abs_sum / n if self.ticks else np.full(hand.NUM_JOINTS, np.nan)
        worst = int(np.nanargmax(per_joint)) if self.ticks else -1
        return {
            "gap_ticks": self.ticks,
            "gap_mean_rad": float(np.mean(means)),
            "gap_p50_rad": float(np.percentile(means, 50)),
            "gap_p95_rad": float(np.percentile(means, 95)),
            "gap_max_rad": float(self._abs_max.max()) if self.ticks else float("nan"),
            "gap_worst_joint": hand.JOINT_NAMES[worst] if worst >= 0 else "none",
            "out_of_range_pairs": self.out_of_range_pairs,
            "pairs": self.pairs,
            "history_breaks": self.breaks,
            "per_joint_mean_rad": per_joint.tolist(),
        }

    @staticmethod
    def format(summary: dict) -> str:
        """The one key=value line (per-joint figures left out)."""
        return " ".join(f"{k}={v:.6f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in summary.items() if k != "per_joint_mean_rad")


def _joints(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.shape != (hand.NUM_JOINTS,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must hold 16 finite values in motor-ID order, got {arr.shape[0]} "
                         f"({'finite' if np.all(np.isfinite(arr)) else 'with NaN/inf'})")
    return arr
