"""The residual policy of DexNDM (paper section 3.3), trained through the frozen dynamics model.

    pi_res(obs [N, 327], base_target [N, 16]) -> residual [N, 16] rad, bounded by +-max_residual (tanh)

Training data are the base policy's own source-world rollouts: for row t of an episode, the W-step window
j = t-W+1 .. t of (q_j, a_j, o_j) with a_j the base target and o_j the policy observation of step j (rebuilt
with the robot's ObservationHistory layout). Each target of the window is corrected,
a'_j = clip(a_j + pi_res(o_j, a_j), limits) (what the runtime sends), and the loss is

    || q_{t+1}^source - f(history of (q_j, a'_j)) ||^2  +  residual_l2 * mean(pi_res^2)

with f the frozen target-world dynamics model (dynamics.py). Gradients reach pi_res through every corrected
target of the window, not only the newest. The residual therefore learns the targets that make the target
world (as f predicts it) take the step the source world took. Splits are by episode; the best eval checkpoint
is kept. `export_residual` writes residual.onnx per the policy contract (dexndm_policy.contract), with a parity
check and metadata that name the data and the dynamics model it was trained through.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dexndm_description import hand
from dexndm_policy import contract, observation
from dexndm_training.dynamics import TransitionWindows, _save_atomic, load_dynamics, load_windows, portable_path
from dexndm_training.networks import ResidualPolicy

MODEL_FILE = "residual.pt"


@dataclass
class ResidualConfig:
    """Settings of residual training."""

    datasets: list[str] = field(default_factory=list)  # the base policy's source-world rollouts
    dynamics: str = ""  # dynamics.pt of the target world (frozen)
    width: int = 96
    blocks: int = 2
    max_residual: float = 0.2  # rad, the bound of every correction
    epochs: int = 20
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    residual_l2: float = 1e-3  # weight of mean(residual^2) (rad^2) in the loss
    q_noise: float = 0.005  # rad, uniform +- on the observed q of the residual's inputs (the env's joint noise)
    max_batches_per_epoch: int = 0  # 0 = a full pass over the training rows
    wrists: list[str] = field(default_factory=list)  # only rollouts of these wrist labels (all when empty)
    eval_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualData:
    """Windows of base-policy rollouts with the policy observation of every row, gathered on demand."""

    def __init__(self, windows: TransitionWindows):
        self.windows = windows
        q, base, first = windows.q, windows.extra["base_target"].float(), windows.first
        rows = torch.arange(len(q))
        self.base = base
        # previous base target of each row: a_{t-1}, with a_{-1} = q_0 (the env's convention)
        prev = torch.where((rows > first)[:, None], base[(rows - 1).clamp_min(0)], q[first])
        self.step = torch.cat([q, prev], dim=1)  # [T, 32] = (q_k, a_{k-1}), one history step
        offsets = torch.arange(observation.HISTORY) - (observation.HISTORY - 1)
        self.obs_index = torch.maximum(rows[:, None] + offsets[None, :], first[:, None])
        self.wrist = windows.extra["wrist"].float()
        self.axis = windows.extra["axis"].float()

    def __len__(self) -> int:
        return len(self.windows)

    def observations(self, rows: torch.Tensor, q_noise: float = 0.0, gen: torch.Generator | None = None
                     ) -> torch.Tensor:
        """obs [..., 327] of dataset rows (any shape), the contract layout; optional uniform noise on q."""
        steps = self.step[self.obs_index[rows]]  # [..., 10, 32]
        if q_noise > 0:
            noise = (torch.rand(steps.shape[:-1] + (hand.NUM_JOINTS,), generator=gen) * 2 - 1) * q_noise
            steps = torch.cat([steps[..., : hand.NUM_JOINTS] + noise, steps[..., hand.NUM_JOINTS:]], dim=-1)
        flat = steps.reshape(*steps.shape[:-2], observation.HISTORY * observation.STEP_DIM)
        return torch.cat([flat, self.wrist[rows], self.axis[rows]], dim=-1)


def load_residual_data(paths: list[str], window: int, eval_fraction: float = 0.1, seed: int = 0,
                       split: bool = True, wrists: tuple[str, ...] = ()) -> dict[str, ResidualData]:
    """{"train", "eval"} (or {"all"}) rows of rollout datasets with observations; `wrists` filters by label."""
    parts = load_windows(paths, window, eval_fraction, seed, split=split, extra=("base_target", "wrist", "axis"),
                         wrists=wrists)
    return {name: ResidualData(w) for name, w in parts.items()}


_LOWER = torch.as_tensor(hand.LOWER, dtype=torch.float32)
_UPPER = torch.as_tensor(hand.UPPER, dtype=torch.float32)


def corrected_window(policy: torch.nn.Module | None, data: ResidualData, rows: torch.Tensor, q_noise: float = 0.0,
                     gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(history [B, 16, W, 2] with every target of the window corrected, residuals [B, W, 16])."""
    idx = data.windows.index[rows]  # [B, W]
    base = data.base[idx]
    if policy is None:
        residual = torch.zeros_like(base)
    else:
        obs = data.observations(idx, q_noise, gen)
        residual = policy(obs.reshape(-1, observation.OBS_DIM), base.reshape(-1, hand.NUM_JOINTS)).reshape(base.shape)
    executed = torch.clamp(base + residual, _LOWER, _UPPER)
    return data.windows.history(rows, target=executed), residual


def mismatch(policy: torch.nn.Module | None, dynamics: torch.nn.Module, data: ResidualData, batch: int = 4096
             ) -> dict[str, float]:
    """One-step mismatch |f(corrected history) - q_{t+1}^source| (rad, mean) and the mean |residual|."""
    abs_sum, res_sum = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            rows = torch.arange(i, min(i + batch, len(data)))
            hist, residual = corrected_window(policy, data, rows)
            abs_sum += float((dynamics(hist) - data.windows.next_q[rows]).abs().sum())
            res_sum += float(residual[:, -1].abs().sum())
    n = max(1, len(data) * hand.NUM_JOINTS)
    return {"mae": abs_sum / n, "mean_abs_residual": res_sum / n}


def train_residual(cfg: ResidualConfig, out_dir: str | os.PathLike, dynamics: torch.nn.Module | None = None,
                   progress: bool = True) -> tuple[ResidualPolicy, dict]:
    """Train pi_res through the frozen dynamics model (cfg.dynamics, or the module given); writes residual.pt."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dyn_record: dict = {}
    if dynamics is None:
        if not cfg.dynamics:
            raise ValueError("no dynamics model: pass --dynamics DYNAMICS.pt (dexndm-train dynamics)")
        dynamics, dyn_record = load_dynamics(cfg.dynamics)
    dynamics.eval()
    for p in dynamics.parameters():
        p.requires_grad_(False)
    data = load_residual_data(cfg.datasets, dynamics.window, cfg.eval_fraction, cfg.seed, wrists=tuple(cfg.wrists))
    train, evald = data["train"], data["eval"]
    policy = ResidualPolicy(cfg.width, cfg.blocks, cfg.max_residual)
    sample = torch.randperm(len(train))[:200_000]
    policy.normalizer.fit(policy.inputs(train.observations(sample), train.base[sample]))
    optim = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=max(cfg.epochs, 1))
    gen = torch.Generator().manual_seed(cfg.seed)
    zero = mismatch(None, dynamics, evald)
    best, best_state, best_epoch, history = float("inf"), None, -1, []
    start = time.time()
    bar = tqdm(range(cfg.epochs), desc="residual", unit="epoch", disable=not progress)
    for epoch in bar:
        policy.train()
        order = torch.randperm(len(train), generator=gen)
        batches = range(0, len(order), cfg.batch_size)
        if cfg.max_batches_per_epoch > 0:
            batches = batches[: cfg.max_batches_per_epoch]
        total, count = 0.0, 0
        for i in batches:
            rows = order[i : i + cfg.batch_size]
            hist, residual = corrected_window(policy, train, rows, cfg.q_noise, gen)
            loss = torch.mean((dynamics(hist) - train.windows.next_q[rows]) ** 2)
            loss = loss + cfg.residual_l2 * torch.mean(residual**2)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total, count = total + loss.item() * len(rows), count + len(rows)
        sched.step()
        policy.eval()
        errors = mismatch(policy, dynamics, evald)
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "eval_mae": errors["mae"],
                        "eval_mean_abs_residual": errors["mean_abs_residual"]})
        if errors["mae"] < best:
            best, best_epoch = errors["mae"], epoch
            best_state = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        bar.set_postfix(eval_mae=f"{errors['mae']:.5f}", zero=f"{zero['mae']:.5f}")
    if best_state is not None:
        policy.load_state_dict(best_state)
    policy.eval()
    final = mismatch(policy, dynamics, evald)
    report = {"train_rows": len(train), "eval_rows": len(evald), "zero_residual_eval": zero, "eval": final,
              "best_epoch": best_epoch, "epochs": cfg.epochs, "seconds": time.time() - start, "history": history}
    record = {"kind": "residual", "state_dict": policy.state_dict(), "config": cfg.to_dict(), "report": report,
              "dynamics": {"path": portable_path(cfg.dynamics) if cfg.dynamics else "",
                           "model": getattr(dynamics, "config", dict)(),
                           "fitted_on": dyn_record.get("fitted_on", [])},
              "datasets": [portable_path(p) for p in cfg.datasets]}
    _save_atomic(record, out_dir / MODEL_FILE)
    (out_dir / "residual_report.json").write_text(json.dumps({k: v for k, v in record.items() if k != "state_dict"},
                                                             indent=1))
    return policy, report


def load_residual(path: str | os.PathLike) -> tuple[ResidualPolicy, dict]:
    """(policy in eval mode, its record) from a residual.pt written by train_residual."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"residual model {path} not found; train one with `dexndm-train residual`")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if saved.get("kind") != "residual":
        raise ValueError(f"{path} is not a residual saved by dexndm-train residual")
    cfg = saved["config"]
    policy = ResidualPolicy(cfg["width"], cfg["blocks"], cfg["max_residual"])
    policy.load_state_dict(saved["state_dict"])
    return policy.eval(), saved


def export_residual(policy: ResidualPolicy, record: dict, path: str | os.PathLike) -> tuple[float, dict]:
    """residual.onnx per the contract (parity-checked) plus its config JSON beside it; returns (error, config)."""
    from dexndm_training import export

    cfg = record["config"]
    config = {"network": "ResidualPolicy", "width": cfg["width"], "blocks": cfg["blocks"],
              "max_residual": cfg["max_residual"], "trained": True, "made_by": "dexndm-train residual",
              "residual": cfg, "dynamics": record.get("dynamics", {}), "datasets": record.get("datasets", []),
              "report": {k: v for k, v in record.get("report", {}).items() if k != "history"}}
    path = Path(path)
    data = "rollouts: " + ",".join(record.get("datasets", [])) + "; dynamics: " + record.get("dynamics", {}).get("path", "")
    error = export.export_policy(policy, contract.KIND_RESIDUAL, path, config, data)
    config["parity_error"] = error
    path.with_suffix(".json").write_text(json.dumps(config, indent=1) + "\n")
    return error, config


def residual_fn(policy: ResidualPolicy):
    """A numpy callable (obs [N, 327], base [N, 16]) -> residual [N, 16] for rollouts in simulation."""

    @torch.no_grad()
    def call(obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        return policy(torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(base, dtype=torch.float32)).numpy()

    return call
