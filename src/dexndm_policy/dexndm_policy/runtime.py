"""The deployed policy: ONNX generalist + residual on onnxruntime, one step per joint state (no rclpy).

One step, from the measured joint angles q_t (rad, motor-ID order):
    obs      = history of (q_k, a_{k-1}) + wrist + axis          (observation contract, layout v1)
    a_t      = integrate_action(a_{t-1}, generalist(obs))        base target; the only thing the history keeps
    r_t      = residual(obs, a_t)        (zeros when the residual is off)
    executed = clip(a_t + r_t, limits)   what the hand is sent
Sessions are single-threaded (one core at 20 Hz is the budget) and warmed up before the first step.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dexndm_description import hand
from dexndm_description.axes import parse_axis
from dexndm_description.wrist import parse_wrist
from dexndm_policy import contract, observation

GENERALIST_FILE = "generalist.onnx"
RESIDUAL_FILE = "residual.onnx"
WARMUP_RUNS = 5


class ModelNotFoundError(FileNotFoundError):
    """A model path does not exist; the message says where models come from."""


def default_models_dir() -> Path:
    """The installed default models (share/dexndm_policy/models), else the source tree's copy."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        share = Path(get_package_share_directory("dexndm_policy")) / "models"
        if (share / GENERALIST_FILE).exists():
            return share
    except (ImportError, PackageNotFoundError):
        pass
    return Path(__file__).resolve().parents[1] / "models"


def default_model_path(kind: str) -> Path:
    return default_models_dir() / (GENERALIST_FILE if kind == contract.KIND_GENERALIST else RESIDUAL_FILE)


def session_options() -> ort.SessionOptions:
    """Single-threaded, sequential, fully optimised: predictable latency on one core."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


class OnnxPolicyModel:
    """One contract-checked, warmed-up onnxruntime session of `kind` (generalist or residual)."""

    def __init__(self, path: str | os.PathLike, kind: str):
        self.path, self.kind = Path(path), kind
        if not self.path.is_file():
            raise ModelNotFoundError(
                f"{kind} model {self.path} does not exist; pass an existing .onnx file, or leave the path empty "
                f"for the installed default ({default_model_path(kind)}); export one with "
                f"`dexndm-train make-default-models --out DIR` (untrained) or `dexndm-train export` (training/)"
            )
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=session_options(),
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable files
            raise contract.ModelContractError(f"{self.path}: onnxruntime cannot load it ({err}); is it an ONNX file?") from None
        inputs = [contract.TensorSpec(i.name, tuple(i.shape)) for i in self.session.get_inputs()]
        outputs = [contract.TensorSpec(o.name, tuple(o.shape)) for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        contract.check_model(kind, self.metadata, inputs, outputs, str(self.path))
        self.input_names = list(contract.INPUTS[kind])
        zeros = {name: np.zeros((1, width), np.float32) for name, width in contract.INPUTS[kind].items()}
        for _ in range(WARMUP_RUNS):
            self.session.run(None, zeros)

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        feeds = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(self.input_names, arrays)}
        return self.session.run(None, feeds)[0]


@dataclass
class PolicyOutput:
    base_target: np.ndarray  # [16] rad
    residual: np.ndarray  # [16] rad, zeros when off
    executed_target: np.ndarray  # [16] rad, inside the limits
    inference_ms: float  # wall time of both ONNX calls


class PolicyRuntime:
    """Generalist + residual for one hand, with its history, axis (palm frame) and wrist orientation."""

    def __init__(self, generalist_path=None, residual_path=None, axis="z", wrist="palm_up", use_residual: bool = True):
        self.generalist = OnnxPolicyModel(generalist_path or default_model_path(contract.KIND_GENERALIST),
                                          contract.KIND_GENERALIST)
        self.residual = OnnxPolicyModel(residual_path or default_model_path(contract.KIND_RESIDUAL),
                                        contract.KIND_RESIDUAL)
        self.use_residual = use_residual
        self.axis = parse_axis(axis)
        self.wrist = parse_wrist(wrist)
        self.history = observation.ObservationHistory(num_envs=1)
        self.base_target: np.ndarray | None = None  # a_{t-1}; None until reset

    @property
    def started(self) -> bool:
        return self.base_target is not None

    def set_axis(self, spec) -> np.ndarray:
        """Parse and apply a new axis (ValueError on bad input, axis unchanged); returns the unit axis."""
        self.axis = parse_axis(spec)
        return self.axis

    def set_wrist(self, spec) -> np.ndarray:
        self.wrist = parse_wrist(spec)
        return self.wrist

    def reset(self, q: np.ndarray) -> None:
        """Start a new episode at the measured q: the history holds (q, a_{-1} = clip(q)) everywhere."""
        self.base_target = hand.clip_to_limits(np.asarray(q, dtype=float))
        self.history.reset(q[None, :], self.base_target[None, :])

    def step(self, q: np.ndarray) -> PolicyOutput:
        """One control step from measured joint angles q [16] rad (finite); resets first if not started."""
        q = np.asarray(q, dtype=float)
        if not self.started:
            self.reset(q)
        else:
            self.history.push(q[None, :], self.base_target[None, :])
        obs = self.history.observation(self.wrist, self.axis)
        start = time.perf_counter()
        delta = self.generalist(obs)[0]
        base = observation.integrate_action(self.base_target, delta)
        residual = self.residual(obs, base[None, :])[0].astype(float) if self.use_residual else np.zeros(hand.NUM_JOINTS)
        inference_ms = (time.perf_counter() - start) * 1e3
        self.base_target = base
        return PolicyOutput(base, residual, hand.clip_to_limits(base + residual), inference_ms)


class StateError(ValueError):
    """A joint state the policy must not act on; the message says what is wrong."""


def check_joint_state(position, names=()) -> np.ndarray:
    """Measured q [16] rad from a JointState's position (and names, when given, must be motor-ID order)."""
    q = np.asarray(position, dtype=float).reshape(-1)
    if q.shape[0] != hand.NUM_JOINTS:
        raise StateError(f"joint state has {q.shape[0]} positions, expected {hand.NUM_JOINTS} (motor-ID order)")
    bad = np.flatnonzero(~np.isfinite(q))
    if bad.size:
        raise StateError(f"joint state holds NaN/inf at {[hand.JOINT_NAMES[i] for i in bad]}; "
                         "check the driver and the servo bus")
    if len(names) and list(names) != list(hand.JOINT_NAMES):
        raise StateError(f"joint names {list(names)} differ from the joint table order {list(hand.JOINT_NAMES)}")
    return q
