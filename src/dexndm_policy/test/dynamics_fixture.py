"""Test fixture (not shipped): a small joint-wise dynamics model fitted with torch, exported per the
dynamics.onnx contract, for the gap monitor's tests. The project's real model comes from
dexndm_training.dynamics; this one is fitted in seconds on data from a known law or a short sim run.

    q, a = first_order_rollouts(alpha=0.5, ...)        # q_{t+1} = q_t + alpha (a_t - q_t)
    path = fit_and_export(q, a, tmp_path / "dynamics.onnx")
    path = halfway_model_path(tmp_path_factory, tmp_path)  # the 0.5 law's model, fitted once per test run
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from dexndm_description import hand
from dexndm_policy import contract

WINDOW = 10


def first_order_rollouts(alpha, episodes: int = 48, steps: int = 60, spread: float = 0.3, seed: int = 0,
                         center=hand.CANONICAL_POSE) -> tuple[np.ndarray, np.ndarray]:
    """q [E, T+1, 16] and executed targets a [E, T, 16] (rad) of the law q_{t+1} = q_t + alpha (a_t - q_t),
    targets a smooth random walk within center +- spread."""
    rng = np.random.default_rng(seed)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (hand.NUM_JOINTS,))
    low, high = hand.clip_to_limits(center - spread), hand.clip_to_limits(center + spread)
    q = np.empty((episodes, steps + 1, hand.NUM_JOINTS))
    a = np.empty((episodes, steps, hand.NUM_JOINTS))
    q[:, 0] = rng.uniform(low, high, size=(episodes, hand.NUM_JOINTS))
    target = q[:, 0].copy()
    for t in range(steps):
        target = np.clip(target + rng.normal(0.0, 0.06, size=target.shape), low, high)
        a[:, t] = target
        q[:, t + 1] = q[:, t] + alpha * (target - q[:, t])
    return q, a


def windows(q: np.ndarray, a: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs: history [M, 16, W, 2] of (q_k, a_k) k = t-W+1..t, and q_{t+1} [M, 16]."""
    pairs = np.stack([q[:, :-1], a], axis=-1)  # [E, T, 16, 2]
    hist, nxt = [], []
    for t in range(window - 1, a.shape[1]):
        hist.append(pairs[:, t - window + 1:t + 1].transpose(0, 2, 1, 3))
        nxt.append(q[:, t + 1])
    return np.concatenate(hist).astype(np.float32), np.concatenate(nxt).astype(np.float32)


class JointwiseNet(torch.nn.Module):
    """16 small MLPs, one per joint on its own window, evaluated as one grouped computation; predicts
    q_{t+1} - q_t with a linear skip. Normalization constants live in the graph."""

    def __init__(self, window: int, hidden: int, mean: np.ndarray, std: np.ndarray, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        j, k = hand.NUM_JOINTS, 2 * window
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))  # [16, 1, 2]
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.w1 = torch.nn.Parameter(torch.randn(j, k, hidden, generator=g) / k ** 0.5)
        self.b1 = torch.nn.Parameter(torch.zeros(j, hidden))
        self.w2 = torch.nn.Parameter(torch.randn(j, hidden, generator=g) * 0.01)
        self.skip = torch.nn.Parameter(torch.zeros(j, k))
        self.scale = 0.1  # rad: the output's unit

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        x = ((history - self.mean) / self.std).flatten(2)  # [N, 16, 2W]
        h = torch.tanh(torch.einsum("njk,jkh->njh", x, self.w1) + self.b1)
        delta = torch.einsum("njh,jh->nj", h, self.w2) + torch.einsum("njk,jk->nj", x, self.skip)
        return history[:, :, -1, 0] + self.scale * delta


def fit(q: np.ndarray, a: np.ndarray, window: int = WINDOW, hidden: int = 16, iterations: int = 600,
        seed: int = 0) -> tuple[JointwiseNet, np.ndarray, np.ndarray]:
    """A JointwiseNet fitted on rollouts (q [E, T+1, 16], a [E, T, 16]); returns it and its training windows."""
    torch.set_num_threads(1)  # small shared test machines: more threads only contend
    torch.manual_seed(seed)
    hist, nxt = windows(q, a, window)
    mean = hist.mean(axis=(0, 2), keepdims=True)[0]  # [16, 1, 2]
    std = hist.std(axis=(0, 2), keepdims=True)[0] + 1e-3
    net = JointwiseNet(window, hidden, mean, std, seed)
    x, y = torch.from_numpy(hist), torch.from_numpy(nxt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        batch = torch.from_numpy(rng.integers(0, len(x), size=min(512, len(x))))
        loss = torch.mean((net(x[batch]) - y[batch]) ** 2) / net.scale ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval(), hist, nxt


def export(net: JointwiseNet, hist: np.ndarray, path: Path, data: str = "test fixture") -> Path:
    """Write net as dynamics.onnx with the contract metadata (ranges = the training windows' per-joint
    min/max of q and of the target); checks onnxruntime against torch."""
    path = Path(path)
    window = hist.shape[2]
    example = torch.from_numpy(hist[:4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch").setLevel(logging.ERROR)
        torch.onnx.export(net, (example,), str(path), input_names=[contract.DYNAMICS_INPUT],
                          output_names=[contract.DYNAMICS_OUTPUT], opset_version=18, dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},), verbose=False)
    model = onnx.load(str(path))
    ranges = [np.stack([hist[..., c].min(axis=(0, 2)), hist[..., c].max(axis=(0, 2))], axis=1) for c in (0, 1)]
    meta = contract.dynamics_metadata(window, ranges[0], ranges[1], {"network": "JointwiseNet (test fixture)"}, data)
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    for leftover in path.parent.glob(path.name + ".data"):
        leftover.unlink()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"history": hist[:64]})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(hist[:64])).numpy()
    assert np.max(np.abs(got - want)) < 1e-4, "onnxruntime and torch disagree on the fixture model"
    return path


def fit_and_export(q: np.ndarray, a: np.ndarray, path: Path, **fit_args) -> Path:
    net, hist, _ = fit(q, a, **fit_args)
    return export(net, hist, path)


def halfway_model_path(tmp_path_factory, folder: Path) -> Path:
    """folder/dynamics.onnx: the model of q_{t+1} = q_t + 0.5 (a_t - q_t) on first_order_rollouts(0.5) with the
    default fit, as fit_and_export makes it. Seeded, so it is fitted once per test run and copied after that:
    three test modules use it, on whichever pytest-xdist workers, so the first to need it fits it into the
    run's shared temporary directory (the workers' basetemps' parent) under a lock, the others wait and copy."""
    base = Path(tmp_path_factory.getbasetemp())
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dexndm-halfway-model"
    cache.mkdir(exist_ok=True)
    model = cache / "dynamics.onnx"
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not model.exists():
            q, a = first_order_rollouts(0.5)
            os.replace(fit_and_export(q, a, cache / "fitting.onnx"), model)
    return Path(shutil.copy(model, Path(folder) / "dynamics.onnx"))
