"""Baselines of the sim-to-sim study, each a correction of the base policy's targets in the target world.

Every baseline ends as a callable (obs [N, 327], base_target [N, 16]) -> correction [N, 16] rad, bounded by
+-max_correction, the same interface and the same bound as the DexNDM residual, so the study runs them all
through one evaluation (tracking.compare_methods). How each was adapted is written down in docs/DEXNDM.md.

- `SysidCompensator` (system identification): the identified per-joint PD model (sysid.py) used as an inverse
  model: the target it receives is chosen so that the identified PD produces the torque the source world's PD
  would produce for the base target.
- `JointCompensator` + `train_compensator` (UAN-style): one small network shared by all joints, fed only that
  joint's recent position errors (a_k - q_k) and velocity errors, trained through a frozen shared actuator
  model of the target world (dynamics.py grouping "shared", fitted on free-hand base waves) so that the target
  joint follows each base wave as the source joint does.
- `AsapCompensator` (ASAP-style): a whole-hand delta-action model Delta(obs, a), trained with the residual code
  through a frozen source-world model on free-hand replayed rollouts of the target world, so that the source
  world driven by a + Delta reproduces the target world driven by a; deployed by cancelling it, a' = a -
  Delta(obs, a') (a few fixed-point steps).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dexndm_description import hand
from dexndm_description.worlds import WorldConfig
from dexndm_policy import observation
from dexndm_training.dynamics import _save_atomic, load_dynamics, load_windows, portable_path

_Q = slice(0, hand.NUM_JOINTS)  # q_k within one observation step
_A_PREV = slice(hand.NUM_JOINTS, 2 * hand.NUM_JOINTS)  # a_{k-1} within one observation step
_LOWER = torch.as_tensor(hand.LOWER, dtype=torch.float32)
_UPPER = torch.as_tensor(hand.UPPER, dtype=torch.float32)


def obs_history(obs: np.ndarray | torch.Tensor, base: np.ndarray | torch.Tensor, window: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(q [N, window, 16], a [N, window, 16]), oldest first, from the observation: q_{t-window+1..t} and the
    base targets a_{t-window+1..t} (a_t = `base`, the older ones are the history's previous targets)."""
    if not 1 <= window <= observation.HISTORY:
        raise ValueError(f"window must lie in 1..{observation.HISTORY}, got {window}")
    obs = torch.as_tensor(obs, dtype=torch.float32)
    steps = obs[:, observation.HISTORY_SLICE].reshape(len(obs), observation.HISTORY, observation.STEP_DIM)
    q = steps[:, -window:, _Q]
    a_prev = steps[:, observation.HISTORY - window + 1:, _A_PREV]  # a_{t-window+1} .. a_{t-1}
    a = torch.cat([a_prev, torch.as_tensor(base, dtype=torch.float32)[:, None]], dim=1)
    return q, a


# ---------------------------------------------------------------------------------------- sysid
class SysidCompensator:
    """Torque matching through the identified PD model: Kp_id (a' - q) - Kd_id qd = Kp_src (a - q) - Kd_src qd,
    so a' = q + (Kp_src (a - q) - (Kd_src - Kd_id) qd) / Kp_id, with qd = (q_t - q_{t-1}) / dt from the history."""

    def __init__(self, identified: WorldConfig, source: WorldConfig | None = None, max_correction: float = 0.2):
        source = source or WorldConfig.source()
        self.kp_src, self.kd_src = np.asarray(source.pd_kp, float), np.asarray(source.pd_kd, float)
        self.kp_id, self.kd_id = np.asarray(identified.pd_kp, float), np.asarray(identified.pd_kd, float)
        self.max_correction = max_correction

    def __call__(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        q, _ = obs_history(obs, base, 2)
        q_t, q_prev = q[:, -1].numpy().astype(float), q[:, 0].numpy().astype(float)
        qd = (q_t - q_prev) / hand.CONTROL_DT
        base = np.asarray(base, float)
        wanted = q_t + (self.kp_src * (base - q_t) - (self.kd_src - self.kd_id) * qd) / self.kp_id
        return np.clip(hand.clip_to_limits(wanted) - base, -self.max_correction, self.max_correction)


# ---------------------------------------------------------------------------------------- UAN-style
class JointCompensator(nn.Module):
    """One MLP shared by all joints: a joint's W position errors and W - 1 velocity errors -> its correction (rad)."""

    def __init__(self, window: int = observation.HISTORY, hidden: tuple[int, ...] = (64, 64),
                 max_correction: float = 0.2):
        super().__init__()
        self.window, self.hidden, self.max_correction = int(window), tuple(int(h) for h in hidden), max_correction
        in_dim = 2 * self.window - 1
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        dims = (in_dim, *self.hidden)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ELU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], 1))
        nn.init.zeros_(self.mlp[-1].weight)  # starts as no correction
        nn.init.zeros_(self.mlp[-1].bias)

    def config(self) -> dict:
        return {"window": self.window, "hidden": list(self.hidden), "max_correction": self.max_correction}

    @staticmethod
    def features(q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """[..., 16, 2W - 1] from q, a [..., W, 16]: position errors, then their changes per tick."""
        error = (a - q).transpose(-1, -2)
        return torch.cat([error, error[..., 1:] - error[..., :-1]], dim=-1)

    @torch.no_grad()
    def fit_normalizer(self, q: torch.Tensor, a: torch.Tensor) -> None:
        feats = self.features(q, a).reshape(-1, self.in_mean.numel())
        self.in_mean.copy_(feats.mean(0))
        self.in_std.copy_(feats.std(0).clamp_min(1e-4))

    def forward(self, q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """q, a [N, W, 16] -> correction [N, 16]."""
        x = (self.features(q, a) - self.in_mean) / self.in_std
        return self.max_correction * torch.tanh(self.mlp(x)[..., 0])


@dataclass
class CompensatorConfig:
    """Training of the UAN-style compensator through a frozen actuator model."""

    datasets: list[str] = field(default_factory=list)  # base waves replayed in the source world (free hand)
    dynamics: str = ""  # the frozen shared actuator model of the target world (dynamics.pt)
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    max_correction: float = 0.2
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    correction_l2: float = 1e-3
    max_batches_per_epoch: int = 0
    eval_fraction: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


COMPENSATOR_FILE = "compensator.pt"


def _compensated_history(comp: JointCompensator, data, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(history [B, 16, W, 2] with every target of the window corrected by comp, corrections [B, W, 16])."""
    idx = data.index[rows]  # [B, W]
    inner = data.index[idx][..., -comp.window:]  # [B, W, Wc]: each window step's own history
    q, a = data.q[inner], data.target[inner]  # [B, W, Wc, 16]
    shape = q.shape
    corr = comp(q.reshape(-1, shape[2], shape[3]), a.reshape(-1, shape[2], shape[3])).reshape(shape[0], shape[1], -1)
    executed = torch.clamp(data.target[idx] + corr, _LOWER, _UPPER)
    return data.history(rows, target=executed), corr


def _compensator_mismatch(comp, dynamics, data, batch: int = 4096) -> float:
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            rows = torch.arange(i, min(i + batch, len(data)))
            hist, _ = _compensated_history(comp, data, rows)
            total += float((dynamics(hist) - data.next_q[rows]).abs().sum())
    return total / max(1, len(data) * hand.NUM_JOINTS)


def train_compensator(cfg: CompensatorConfig, out_dir: str | os.PathLike, progress: bool = True
                      ) -> tuple[JointCompensator, dict]:
    """Fit the shared compensator so that the frozen target actuator model, fed the corrected targets, takes the
    source world's step along the waves; writes out_dir/compensator.pt (the best eval epoch)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dynamics, record = load_dynamics(cfg.dynamics)
    for p in dynamics.parameters():
        p.requires_grad_(False)
    data = load_windows(cfg.datasets, dynamics.window, cfg.eval_fraction, cfg.seed)
    train, evald = data["train"], data["eval"]
    comp = JointCompensator(dynamics.window, tuple(cfg.hidden), cfg.max_correction)
    sample = torch.randperm(len(train))[:100_000]
    comp.fit_normalizer(train.q[train.index[sample]], train.target[train.index[sample]])
    optim = torch.optim.AdamW(comp.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    zero = _compensator_mismatch(comp, dynamics, evald)
    best, best_state, history = float("inf"), None, []
    start = time.time()
    for epoch in tqdm(range(cfg.epochs), desc="UAN compensator", unit="epoch", disable=not progress):
        order = torch.randperm(len(train), generator=gen)
        batches = range(0, len(order), cfg.batch_size)
        if cfg.max_batches_per_epoch > 0:
            batches = batches[: cfg.max_batches_per_epoch]
        for i in batches:
            rows = order[i : i + cfg.batch_size]
            hist, corr = _compensated_history(comp, train, rows)
            loss = torch.mean((dynamics(hist) - train.next_q[rows]) ** 2) + cfg.correction_l2 * torch.mean(corr**2)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
        err = _compensator_mismatch(comp, dynamics, evald)
        history.append({"epoch": epoch, "eval_mae": err})
        if err < best:
            best, best_state = err, {k: v.detach().clone() for k, v in comp.state_dict().items()}
    comp.load_state_dict(best_state)
    report = {"zero_correction_eval_mae": zero, "eval_mae": best, "history": history, "seconds": time.time() - start,
              "train_rows": len(train)}
    _save_atomic({"kind": "uan_compensator", "model": comp.config(), "state_dict": comp.state_dict(),
                  "config": cfg.to_dict(), "dynamics_fitted_on": record.get("fitted_on", []),
                  "datasets": [portable_path(p) for p in cfg.datasets], "report": report}, out_dir / COMPENSATOR_FILE)
    (out_dir / "compensator_report.json").write_text(json.dumps({"config": cfg.to_dict(), "report": report}, indent=1))
    return comp.eval(), report


def load_compensator(path: str | os.PathLike) -> JointCompensator:
    path = Path(path)
    if path.is_dir():
        path = path / COMPENSATOR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"compensator {path} not found; train one with baselines.train_compensator")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if saved.get("kind") != "uan_compensator":
        raise ValueError(f"{path} is not a UAN-style compensator")
    model = saved["model"]
    comp = JointCompensator(model["window"], tuple(model["hidden"]), model["max_correction"])
    comp.load_state_dict(saved["state_dict"])
    return comp.eval()


def compensator_fn(comp: JointCompensator):
    """The compensator as a (obs, base) -> correction callable."""

    @torch.no_grad()
    def call(obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        q, a = obs_history(obs, base, comp.window)
        return comp(q, a).numpy()

    return call


# ---------------------------------------------------------------------------------------- ASAP-style
class AsapCompensator:
    """Cancel a delta-action model: the target world under a behaves like the source world under a + Delta(obs, a),
    so send a' with a' + Delta(obs, a') = a, found by `iterations` fixed-point steps a' <- a - Delta(obs, a')."""

    def __init__(self, delta: nn.Module, iterations: int = 3, max_correction: float = 0.2):
        self.delta, self.iterations, self.max_correction = delta.eval(), iterations, max_correction

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        base_t = torch.as_tensor(base, dtype=torch.float32)
        sent = base_t.clone()
        for _ in range(self.iterations):
            sent = torch.clamp(base_t - self.delta(obs_t, sent), _LOWER, _UPPER)
        return torch.clamp(sent - base_t, -self.max_correction, self.max_correction).numpy()
