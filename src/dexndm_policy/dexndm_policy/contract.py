"""The ONNX model contract (DESIGN.md "Policy contract"), checked without torch.

generalist.onnx: input `obs` float32 [N, 327] -> output `delta` float32 [N, 16] in [-1, 1].
residual.onnx:   inputs `obs` [N, 327], `base_target` [N, 16] -> output `residual` [N, 16] rad.
dynamics.onnx:   input `history` [N, 16, W, 2] (per joint its last W (q, executed target) pairs, oldest first)
                 -> output `next_q` [N, 16] rad; metadata adds the window W and the per-joint input ranges.
Each file carries string metadata (ONNX metadata_props) under the keys below.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from dexndm_description import hand
from dexndm_policy import observation

KIND_GENERALIST = "generalist"
KIND_RESIDUAL = "residual"
KIND_DYNAMICS = "dynamics"

META_KIND = "dexndm_kind"
META_LAYOUT = "dexndm_layout_version"
META_JOINTS = "dexndm_joint_names"
META_HISTORY = "dexndm_history"
META_ACTION_SCALE = "dexndm_action_scale"
META_CONFIG = "dexndm_training_config"
META_DATA = "dexndm_training_data"
#: dynamics.onnx only: the window W (str int) and the per-joint input ranges seen in training, JSON
#: {"position": [[lo, hi] x 16], "target": [[lo, hi] x 16]} rad, motor-ID order.
META_WINDOW = "dexndm_window"
META_INPUT_RANGES = "dexndm_input_ranges"
DYNAMICS_INPUT, DYNAMICS_OUTPUT = "history", "next_q"

INPUTS = {
    KIND_GENERALIST: {"obs": observation.OBS_DIM},
    KIND_RESIDUAL: {"obs": observation.OBS_DIM, "base_target": hand.NUM_JOINTS},
}
OUTPUTS = {KIND_GENERALIST: ("delta", hand.NUM_JOINTS), KIND_RESIDUAL: ("residual", hand.NUM_JOINTS)}


class ModelContractError(ValueError):
    """A model file does not follow the contract; the message says what differs and what to do."""


def metadata_for(kind: str, training_config: dict | None = None, training_data: str = "") -> dict[str, str]:
    """The metadata strings an exporter writes into a model of `kind`."""
    if kind not in INPUTS:
        raise ValueError(f"unknown model kind {kind!r}")
    return {
        META_KIND: kind,
        META_LAYOUT: str(observation.LAYOUT_VERSION),
        META_JOINTS: ",".join(hand.JOINT_NAMES),
        META_HISTORY: str(observation.HISTORY),
        META_ACTION_SCALE: repr(hand.ACTION_SCALE),
        META_CONFIG: json.dumps(training_config or {}, sort_keys=True),
        META_DATA: training_data,
    }


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints or symbolic names/None for free dimensions


def check_model(kind: str, metadata: dict[str, str], inputs: list[TensorSpec], outputs: list[TensorSpec], path: str = "model") -> None:
    """Raise ModelContractError unless a model's metadata and signature match `kind`."""
    hint = "re-export it (`dexndm-train export`, training/) for this joint table and observation layout"
    found_kind = metadata.get(META_KIND)
    if found_kind != kind:
        raise ModelContractError(f"{path}: metadata says kind {found_kind!r}, expected {kind!r}; is it the right file?")
    if metadata.get(META_LAYOUT) != str(observation.LAYOUT_VERSION):
        raise ModelContractError(
            f"{path}: observation layout version {metadata.get(META_LAYOUT)!r}, this stack speaks "
            f"{observation.LAYOUT_VERSION}; {hint}"
        )
    if metadata.get(META_JOINTS, "").split(",") != list(hand.JOINT_NAMES):
        raise ModelContractError(f"{path}: joint names differ from the joint table (motor-ID order); {hint}")
    if metadata.get(META_HISTORY) != str(observation.HISTORY):
        raise ModelContractError(f"{path}: history length {metadata.get(META_HISTORY)!r}, expected {observation.HISTORY}; {hint}")
    if kind == KIND_GENERALIST and abs(float(metadata.get(META_ACTION_SCALE, "nan")) - hand.ACTION_SCALE) > 1e-9:
        raise ModelContractError(f"{path}: action scale {metadata.get(META_ACTION_SCALE)!r}, expected 1/24; {hint}")
    want_inputs = INPUTS[kind]
    got_inputs = {t.name: t.shape for t in inputs}
    if set(got_inputs) != set(want_inputs):
        raise ModelContractError(f"{path}: inputs {sorted(got_inputs)}, expected {sorted(want_inputs)}")
    for name, width in want_inputs.items():
        _check_shape(path, name, got_inputs[name], width)
    out_name, out_width = OUTPUTS[kind]
    if len(outputs) != 1 or outputs[0].name != out_name:
        raise ModelContractError(f"{path}: outputs {[t.name for t in outputs]}, expected [{out_name!r}]")
    _check_shape(path, out_name, outputs[0].shape, out_width)


def _check_shape(path: str, name: str, shape: tuple, width: int) -> None:
    if len(shape) != 2 or shape[1] != width:
        raise ModelContractError(f"{path}: {name} has shape {list(shape)}, expected [N, {width}]")
    if isinstance(shape[0], int) and shape[0] != 1:
        raise ModelContractError(f"{path}: {name} has a fixed batch size {shape[0]}; export with a free batch dimension")


@dataclass(frozen=True)
class DynamicsSpec:
    """What a checked dynamics.onnx declares: its window and the per-joint input ranges it was fitted on (rad)."""

    window: int
    position_range: np.ndarray  # [16, 2] lo, hi
    target_range: np.ndarray  # [16, 2] lo, hi


def dynamics_metadata(window: int, position_range, target_range, training_config: dict | None = None,
                      training_data: str = "") -> dict[str, str]:
    """The metadata strings an exporter writes into dynamics.onnx; ranges [16, 2] (lo, hi) rad per joint."""
    ranges = {"position": np.asarray(position_range, dtype=float).tolist(),
              "target": np.asarray(target_range, dtype=float).tolist()}
    return {
        META_KIND: KIND_DYNAMICS,
        META_JOINTS: ",".join(hand.JOINT_NAMES),
        META_WINDOW: str(int(window)),
        META_INPUT_RANGES: json.dumps(ranges),
        META_CONFIG: json.dumps(training_config or {}, sort_keys=True),
        META_DATA: training_data,
    }


def check_dynamics_model(metadata: dict[str, str], inputs: list[TensorSpec], outputs: list[TensorSpec],
                         path: str = "dynamics.onnx") -> DynamicsSpec:
    """The DynamicsSpec of a joint-wise dynamics model; ModelContractError unless it follows the contract."""
    hint = "re-export it per the dynamics.onnx contract (dexndm_policy.contract.dynamics_metadata)"
    if metadata.get(META_KIND) != KIND_DYNAMICS:
        raise ModelContractError(f"{path}: metadata says kind {metadata.get(META_KIND)!r}, expected "
                                 f"{KIND_DYNAMICS!r}; is it the joint-wise dynamics model?")
    if metadata.get(META_JOINTS, "").split(",") != list(hand.JOINT_NAMES):
        raise ModelContractError(f"{path}: joint names differ from the joint table (motor-ID order); {hint}")
    try:
        window = int(metadata.get(META_WINDOW, ""))
        ranges = json.loads(metadata.get(META_INPUT_RANGES, ""))
        position, target = (np.asarray(ranges[k], dtype=float) for k in ("position", "target"))
    except (ValueError, KeyError, TypeError):
        raise ModelContractError(f"{path}: metadata {META_WINDOW!r} (an int) and {META_INPUT_RANGES!r} (JSON "
                                 f"{{\"position\": [[lo, hi] x 16], \"target\": ...}}) are missing or unreadable; {hint}") from None
    if window < 1:
        raise ModelContractError(f"{path}: window {window} must be >= 1; {hint}")
    for name, r in (("position", position), ("target", target)):
        if r.shape != (hand.NUM_JOINTS, 2) or not np.all(np.isfinite(r)) or np.any(r[:, 0] > r[:, 1]):
            raise ModelContractError(f"{path}: {name} ranges must be 16 finite [lo, hi] pairs with lo <= hi; {hint}")
    if [t.name for t in inputs] != [DYNAMICS_INPUT] or [t.name for t in outputs] != [DYNAMICS_OUTPUT]:
        raise ModelContractError(f"{path}: inputs {[t.name for t in inputs]} / outputs {[t.name for t in outputs]}, "
                                 f"expected [{DYNAMICS_INPUT!r}] / [{DYNAMICS_OUTPUT!r}]")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[1:] != (hand.NUM_JOINTS, window, 2):
        raise ModelContractError(f"{path}: {DYNAMICS_INPUT} has shape {list(shape)}, expected "
                                 f"[N, {hand.NUM_JOINTS}, {window}, 2] (window from the metadata)")
    out_shape = tuple(outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] != hand.NUM_JOINTS:
        raise ModelContractError(f"{path}: {DYNAMICS_OUTPUT} has shape {list(out_shape)}, expected [N, {hand.NUM_JOINTS}]")
    for dim in (shape[0], out_shape[0]):
        if isinstance(dim, int) and dim != 1:
            raise ModelContractError(f"{path}: fixed batch size {dim}; export with a free batch dimension")
    return DynamicsSpec(window, position, target)
