"""Export policies to ONNX per the contract (dexndm_policy.contract), with an onnxruntime parity check."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from dexndm_description import hand
from dexndm_policy import contract, observation

OPSET = 18
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """onnxruntime and PyTorch disagree on the exported graph."""


def example_inputs(kind: str, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible random inputs: joint angles inside the limits, unit wrist quaternions and axes."""
    rng = np.random.default_rng(seed)
    low, high = np.tile(hand.LOWER, 2), np.tile(hand.UPPER, 2)  # (q, previous target) per history step
    q = rng.uniform(low, high, size=(batch, observation.HISTORY, observation.STEP_DIM))
    wrist = rng.normal(size=(batch, 4))
    axis = rng.normal(size=(batch, 3))
    obs = np.concatenate([q.reshape(batch, -1), wrist / np.linalg.norm(wrist, axis=1, keepdims=True),
                          axis / np.linalg.norm(axis, axis=1, keepdims=True)], axis=1).astype(np.float32)
    inputs = {"obs": obs}
    if kind == contract.KIND_RESIDUAL:
        inputs["base_target"] = rng.uniform(hand.LOWER, hand.UPPER, size=(batch, hand.NUM_JOINTS)).astype(np.float32)
    return inputs


def export_policy(net: torch.nn.Module, kind: str, path: str | os.PathLike, training_config: dict | None = None,
                  training_data: str = "") -> float:
    """Write `net` as an ONNX model of `kind` with metadata; returns the max |onnxruntime - torch| seen."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval().cpu()
    names = list(contract.INPUTS[kind])
    sample = example_inputs(kind, batch=4)
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    batch = torch.export.Dim("batch", min=1, max=65536)
    tmp = path.with_suffix(".partial.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.getLogger("torch").level
        logging.getLogger("torch").setLevel(logging.ERROR)
        try:
            torch.onnx.export(net, args, str(tmp), input_names=names, output_names=[contract.OUTPUTS[kind][0]],
                              dynamic_shapes=tuple({0: batch} for _ in names), opset_version=OPSET, dynamo=True,
                              verbose=False)
        finally:
            logging.getLogger("torch").setLevel(level)
    model = onnx.load(str(tmp))
    for key, value in contract.metadata_for(kind, training_config, training_data).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp))
    error = parity_error(net, kind, str(tmp))
    if error > PARITY_TOLERANCE:
        tmp.unlink()
        raise ParityError(f"onnxruntime differs from PyTorch by {error:.2e} (> {PARITY_TOLERANCE}); not written")
    tmp.replace(path)
    for leftover in path.parent.glob(tmp.name + ".data"):
        leftover.unlink()
    return error


@torch.no_grad()
def parity_error(net: torch.nn.Module, kind: str, onnx_path: str, batch: int = 64) -> float:
    """Max absolute difference between onnxruntime and PyTorch outputs on random plausible inputs."""
    sample = example_inputs(kind, batch=batch, seed=1)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = session.run(None, sample)[0]
    want = net(*(torch.from_numpy(sample[n]) for n in contract.INPUTS[kind])).numpy()
    return float(np.max(np.abs(got - want)))
