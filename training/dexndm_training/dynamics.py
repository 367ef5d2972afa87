"""The joint-wise neural dynamics model of DexNDM (paper section 3.3), with its finger-wise and whole-hand variants.

    history [N, 16, W, 2]  per joint, its last W (position q, executed target a) pairs, oldest first (rad)
    next_q  [N, 16]        predicted q_{t+1} = q_t + delta (rad)

A *grouping* partitions the 16 joints into G equally sized groups; group g's network sees the histories of
its joints only and predicts their deltas. `joint` = 16 groups of one joint (the DexNDM model: joint i's output
depends on row i alone), `finger` = 4 groups of 4 (index, middle, ring, thumb), `hand` = one group of all 16
(the whole-hand baseline); `shared` = one network applied to every joint, fed that joint's position and
velocity errors only (the UAN-style actuator network of the baselines). All G networks are evaluated as one
batched computation: each layer holds weights [G, in, out] and runs one batched matrix product over the
groups, never a Python loop over joints.

Inputs are encoded per joint relative to its newest position (q_t absolute, q_k - q_t for the older steps,
a_k - q_t for every target), a linear map of the joint's own row, then normalized with statistics of the
training data; the output is a normalized delta scaled back per joint. Normalization lives in the module, so
it travels into dynamics.onnx.

Training (`train_dynamics`): windows cut from dataset episodes (steps before the episode's first row repeat
the first row), split 9:1 by episode, AdamW with a cosine schedule, MSE on the normalized delta, the best
eval checkpoint kept. `init` fine-tunes a trained model (its normalizer is kept, its fitted-on record and
input ranges extend). A checkpoint is written atomically after every epoch, and a rerun with the same output
directory resumes from it.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dexndm_description import hand
from dexndm_training.dataset import Dataset

GROUPINGS = ("joint", "finger", "hand", "shared")
DEFAULT_WINDOW = 10
CHECKPOINT = "checkpoint.pt"  # latest state, for resuming
MODEL_FILE = "dynamics.pt"  # the best-eval model


def group_joints(grouping: str) -> np.ndarray:
    """[G, k] joint indices (motor-ID order) of each group of `grouping`."""
    if grouping in ("joint", "shared"):
        return np.arange(hand.NUM_JOINTS)[:, None]
    if grouping == "finger":
        return np.stack([np.flatnonzero(hand.FINGER_OF_JOINT == f) for f in range(4)])
    if grouping == "hand":
        return np.arange(hand.NUM_JOINTS)[None, :]
    raise ValueError(f"unknown grouping {grouping!r}; choose one of {', '.join(GROUPINGS)}")


def check_history(history: torch.Tensor, window: int) -> None:
    """ValueError unless history is [N, 16, window, 2]."""
    if history.ndim != 4 or tuple(history.shape[1:]) != (hand.NUM_JOINTS, window, 2):
        raise ValueError(f"history must be [N, {hand.NUM_JOINTS}, {window}, 2] (per joint: W x (q, target), oldest "
                         f"first), got {list(history.shape)}")


class GroupedLinear(nn.Module):
    """G independent linear layers applied together, group-major: x [G, N, in] -> [G, N, out] (one batched
    matrix product, no copies between layers). With one output (the joint-wise head) it is a multiply and a
    sum over `in` instead: batched products with a single output column are several times slower on the CPU
    than the 16 matrix-vector products of separate networks (measured in docs/DEXNDM.md, Benchmark)."""

    def __init__(self, groups: int, in_dim: int, out_dim: int, scale: float = 1.0):
        super().__init__()
        bound = scale / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(groups, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[2] == 1:
            return (x * self.weight.transpose(1, 2)).sum(-1, keepdim=True) + self.bias[:, None, :]
        return torch.baddbmm(self.bias[:, None, :], x, self.weight)


class DynamicsModel(nn.Module):
    """history [N, 16, W, 2] -> next_q [N, 16] rad; see the module docstring."""

    def __init__(self, window: int = DEFAULT_WINDOW, grouping: str = "joint", hidden: tuple[int, ...] = (128, 128)):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        joints = group_joints(grouping)
        self.window, self.grouping, self.hidden = int(window), grouping, tuple(int(h) for h in hidden)
        groups, per_group = joints.shape
        self.shared = grouping == "shared"  # one network (and one normalizer) for every joint
        self.register_buffer("joints", torch.as_tensor(joints, dtype=torch.long))
        self.register_buffer("order", torch.as_tensor(np.argsort(joints.reshape(-1)), dtype=torch.long))
        in_dim = 2 * self.window - 1 if self.shared else per_group * 2 * self.window
        if self.shared:
            groups = 1
        self.register_buffer("in_mean", torch.zeros(groups, in_dim))
        self.register_buffer("in_std", torch.ones(groups, in_dim))
        self.register_buffer("out_mean", torch.zeros(hand.NUM_JOINTS))
        self.register_buffer("out_std", torch.ones(hand.NUM_JOINTS))
        dims = (in_dim, *self.hidden)
        self.layers = nn.ModuleList(GroupedLinear(groups, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = GroupedLinear(groups, dims[-1], per_group, scale=0.1)

    def config(self) -> dict:
        return {"window": self.window, "grouping": self.grouping, "hidden": list(self.hidden)}

    def features(self, history: torch.Tensor) -> torch.Tensor:
        """[N, G, k * 2W]: each joint's row relative to its newest position, grouped. `shared`: [N, 16, 2W - 1],
        each joint's position errors a_k - q_k and velocity errors (a_k - a_{k-1}) - (q_k - q_{k-1}) (rad per
        tick), no absolute position (an actuator network's inputs)."""
        q, a = history[..., 0], history[..., 1]  # [N, 16, W]
        if self.shared:
            error = a - q
            return torch.cat([error, error[..., 1:] - error[..., :-1]], dim=-1)
        last = q[..., -1:]
        rel = torch.cat([last, q[..., :-1] - last, a - last], dim=-1)  # [N, 16, 2W]
        grouped = rel[:, self.joints]  # [N, G, k, 2W]
        return grouped.reshape(grouped.shape[0], grouped.shape[1], -1)

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """The G grouped MLPs: normalized inputs [N, G, k * 2W] -> normalized deltas [N, G, k]."""
        n, groups = x.shape[0], x.shape[1]
        x = x.reshape(1, n * groups, x.shape[2]) if self.shared else x.transpose(0, 1)  # group-major layers
        for layer in self.layers:
            x = torch.nn.functional.elu(layer(x), inplace=True)  # in place: the product's output is not saved
        out = self.head(x)
        return out.reshape(n, groups, -1) if self.shared else out.transpose(0, 1)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        check_history(history, self.window)
        x = (self.features(history) - self.in_mean) / self.in_std
        delta = self.network(x).reshape(x.shape[0], -1)[:, self.order]  # group order -> motor-ID order
        return history[:, :, -1, 0] + self.out_mean + self.out_std * delta

    @torch.no_grad()
    def fit_normalizer(self, history: torch.Tensor, next_q: torch.Tensor, min_std: float = 1e-4) -> None:
        """Input and delta statistics from training samples (history [M, 16, W, 2], next_q [M, 16])."""
        feats = self.features(history)
        dims = (0, 1) if self.shared else (0,)  # shared: one statistic over joints too
        self.in_mean.copy_(feats.mean(dims).reshape(self.in_mean.shape))
        self.in_std.copy_(feats.std(dims).clamp_min(min_std).reshape(self.in_std.shape))
        delta = next_q - history[:, :, -1, 0]
        self.out_mean.copy_(delta.mean(dims).expand(hand.NUM_JOINTS))
        self.out_std.copy_(delta.std(dims).clamp_min(min_std).expand(hand.NUM_JOINTS))


# ---------------------------------------------------------------------------------------- data
class TransitionWindows:
    """Rows of datasets with W-step window indices; histories are gathered on demand (memory-light)."""

    def __init__(self, q: np.ndarray, target: np.ndarray, next_q: np.ndarray, first: np.ndarray, window: int,
                 extra: dict[str, np.ndarray] | None = None):
        self.extra = {k: torch.as_tensor(v) for k, v in (extra or {}).items()}  # other per-row arrays
        self.first = torch.as_tensor(first, dtype=torch.long)  # row of each row's episode start
        self.q = torch.as_tensor(np.asarray(q, dtype=np.float32))
        self.target = torch.as_tensor(np.asarray(target, dtype=np.float32))
        self.next_q = torch.as_tensor(np.asarray(next_q, dtype=np.float32))
        rows = np.arange(len(q))
        offsets = np.arange(window) - (window - 1)
        self.index = torch.as_tensor(np.maximum(rows[:, None] + offsets[None, :], first[:, None]), dtype=torch.long)
        self.window = window

    def __len__(self) -> int:
        return len(self.q)

    def history(self, rows: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 16, W, 2] for dataset rows; `target` replaces the executed targets (e.g. with a residual)."""
        idx = self.index[rows]  # [B, W]
        q = self.q[idx]
        a = self.target[idx] if target is None else target
        return torch.stack([q, a], dim=-1).permute(0, 2, 1, 3)

    def ranges(self) -> dict[str, list[list[float]]]:
        """Per-joint [min, max] of q and of the executed target (rad)."""
        return {"q": torch.stack([self.q.min(0).values, self.q.max(0).values], 1).tolist(),
                "target": torch.stack([self.target.min(0).values, self.target.max(0).values], 1).tolist()}


def _episode_rows(ds: Dataset, episodes) -> np.ndarray:
    return np.concatenate([np.arange(ds.episodes[i]["start"], ds.episodes[i]["start"] + ds.episodes[i]["length"])
                           for i in episodes]) if len(episodes) else np.zeros(0, dtype=int)


def choose_episodes(ds: Dataset, split: bool, eval_fraction: float = 0.1, seed: int = 0, max_episodes: int = 0,
                    wrists: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Episode ids per split: {"train", "eval"} (9:1 by episode, Dataset.split_episodes) or {"all"}.

    `wrists` keeps only episodes with those wrist labels; max_episodes > 0 then keeps that many (a seeded draw;
    data-scaling studies)."""
    ids = np.arange(len(ds.episodes))
    if wrists:
        ids = np.array([i for i in ids if ds.episodes[i]["wrist"] in wrists], dtype=int)
        if len(ids) == 0:
            labels = sorted({e["wrist"] for e in ds.episodes})
            raise ValueError(f"{ds.path}: no episode with wrist in {list(wrists)}; labels present: {labels}")
    subset = bool(wrists) or max_episodes > 0
    if max_episodes > 0:
        ids = np.sort(np.random.default_rng([seed, 7]).permutation(ids)[:max_episodes])
    if not split:
        return {"all": ids}
    if not subset:
        train_ids, eval_ids = ds.split_episodes(eval_fraction, seed)
    else:
        order = np.random.default_rng(seed).permutation(ids)
        n_eval = max(1, int(round(eval_fraction * len(ids)))) if len(ids) > 1 else 0
        train_ids, eval_ids = np.sort(order[n_eval:]), np.sort(order[:n_eval])
    return {"train": train_ids, "eval": eval_ids if len(eval_ids) else train_ids}  # one episode: evaluate on it


def load_windows(paths: list[str], window: int, eval_fraction: float = 0.1, seed: int = 0, split: bool = True,
                 extra: tuple[str, ...] = (), max_episodes: int = 0, wrists: tuple[str, ...] = ()
                 ) -> dict[str, TransitionWindows]:
    """{"train", "eval"} (or {"all"} with split=False) windows of the datasets, split by episode.

    Arrays named in `extra` (e.g. base_target, wrist, axis) come along in each split's `extra`; max_episodes > 0
    keeps that many episodes per dataset (choose_episodes)."""
    if not paths:
        raise ValueError("no datasets given: pass one or more dataset directories (dexndm-train ndm-data)")
    parts: dict[str, list[tuple]] = {}
    for path in paths:
        ds = Dataset(path)
        chosen = choose_episodes(ds, split, eval_fraction, seed, max_episodes, tuple(wrists))
        for name, ids in chosen.items():
            rows = _episode_rows(ds, ids)
            arrays = {k: np.asarray(ds[k][rows]) for k in ("q", "target", "next_q", "step", *extra)}
            for k in ("q", "target", "next_q", *extra):
                if arrays[k].dtype.kind == "f" and not np.all(np.isfinite(arrays[k])):
                    raise ValueError(f"{path}: {k} holds NaN or inf; regenerate or reconvert this dataset")
            parts.setdefault(name, []).append(arrays)
    out = {}
    for name, chunks in parts.items():
        cat = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        rows = np.arange(len(cat["q"]))
        first = rows - cat["step"]  # steps are 0.. within each episode, rows contiguous
        out[name] = TransitionWindows(cat["q"], cat["target"], cat["next_q"], first, window,
                                      {k: cat[k] for k in extra})
    return out


# ---------------------------------------------------------------------------------------- training
@dataclass
class DynamicsConfig:
    """Settings of one training run (pretraining, or fine-tuning with `init`)."""

    datasets: list[str] = field(default_factory=list)
    init: str = ""  # dynamics.pt to fine-tune from ("" = pretrain from scratch)
    role: str = ""  # what the datasets are, for the fitted-on record: "" = pretrain, or finetune with init
    window: int = DEFAULT_WINDOW
    grouping: str = "joint"  # joint (DexNDM), finger, hand, or shared (one actuator net for all joints, UAN-style)
    hidden: list[int] = field(default_factory=lambda: [128, 128])  # each group's MLP (64 x 64: 6 % worse, TRAINING.md)
    epochs: int = 30
    batch_size: int = 256  # windows per step (2048: 45-50 % larger one-step errors after 30 epochs, TRAINING.md)
    lr: float = 1e-3
    weight_decay: float = 1e-5
    max_batches_per_epoch: int = 0  # 0 = a full pass over the training rows
    max_episodes: int = 0  # > 0: use only this many episodes of each dataset (data-scaling studies)
    wrists: list[str] = field(default_factory=list)  # only episodes of these wrist labels (all when empty)
    eval_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


def prediction_errors(model: nn.Module, data: TransitionWindows, batch: int = 8192) -> dict[str, float]:
    """One-step errors over all rows (rad): model MAE and RMSE, and the zero-delta predictor's."""
    device = next(model.buffers()).device
    abs_sum, sq_sum, zero_abs = 0.0, 0.0, 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data), batch):
            rows = torch.arange(i, min(i + batch, len(data)))
            pred = model(data.history(rows).to(device)).cpu()
            err = pred - data.next_q[rows]
            abs_sum += float(err.abs().sum())
            sq_sum += float((err**2).sum())
            zero_abs += float((data.next_q[rows] - data.q[rows]).abs().sum())
    model.train(was_training)
    n = max(1, len(data) * hand.NUM_JOINTS)
    return {"mae": abs_sum / n, "rmse": math.sqrt(sq_sum / n), "zero_delta_mae": zero_abs / n}


def per_joint_mae(model: nn.Module, data: TransitionWindows, batch: int = 8192) -> list[float]:
    """MAE per joint (rad), motor-ID order."""
    total = torch.zeros(hand.NUM_JOINTS)
    with torch.no_grad():
        for i in range(0, len(data), batch):
            rows = torch.arange(i, min(i + batch, len(data)))
            total += (model(data.history(rows)) - data.next_q[rows]).abs().sum(0)
    return (total / max(1, len(data))).tolist()


def portable_path(path: str | os.PathLike) -> str:
    """A path for records: relative to the working directory when inside it (runs/...), else absolute."""
    full = Path(path).resolve()
    try:
        return str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(full)


def _union_ranges(a: dict | None, b: dict) -> dict:
    if not a:
        return b
    return {k: [[min(x[0], y[0]), max(x[1], y[1])] for x, y in zip(a[k], b[k])] for k in b}


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_dynamics(path: str | os.PathLike) -> tuple[DynamicsModel, dict]:
    """(model in eval mode on the CPU, its saved record) from a dynamics.pt written by train_dynamics."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"dynamics model {path} not found; train one with `dexndm-train dynamics`")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if saved.get("kind") != "dynamics":
        raise ValueError(f"{path} is not a dynamics model saved by dexndm-train dynamics")
    model = DynamicsModel(**saved["model"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved


def train_dynamics(cfg: DynamicsConfig, out_dir: str | os.PathLike, resume: bool = True, progress: bool = True,
                   on_epoch=None) -> tuple[DynamicsModel, dict]:
    """Train (or fine-tune) on cfg.datasets; writes out_dir/dynamics.pt (best eval) and checkpoint.pt.

    `on_epoch(epoch, entry)` is called after each epoch's checkpoint is on disk. A run stopped at any point
    resumes from its last checkpoint (same cfg and out_dir) and ends exactly as an uninterrupted run."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    init_record: dict = {}
    if cfg.init:
        model, init_record = load_dynamics(cfg.init)
        if model.window != cfg.window or model.grouping != cfg.grouping:
            raise ValueError(f"{cfg.init}: window {model.window} / grouping {model.grouping} differ from "
                             f"--window {cfg.window} / --grouping {cfg.grouping}; pass the model's own settings")
    else:
        model = DynamicsModel(cfg.window, cfg.grouping, tuple(cfg.hidden))
    data = load_windows(cfg.datasets, cfg.window, cfg.eval_fraction, cfg.seed, max_episodes=cfg.max_episodes,
                        wrists=tuple(cfg.wrists))
    train, evald = data["train"], data["eval"]
    if not cfg.init:
        sample = torch.randperm(len(train))[:200_000]
        model.fit_normalizer(train.history(sample), train.next_q[sample])
    model.to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=max(cfg.epochs, 1))
    role = cfg.role or ("finetune" if cfg.init else "pretrain")
    fitted_on = list(init_record.get("fitted_on", [])) + [
        {"role": role, "datasets": [portable_path(p) for p in cfg.datasets], "train_rows": len(train)}]
    ranges = _union_ranges(init_record.get("input_ranges"), train.ranges())
    state = {"epoch": 0, "best_eval": float("inf"), "best_epoch": -1, "best_state": None, "history": []}
    initial = prediction_errors(model, evald)  # before any training (the same after a resume)
    ckpt_path = out_dir / CHECKPOINT
    if resume and ckpt_path.exists():
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if saved["config"] != cfg.to_dict():
            raise ValueError(f"{ckpt_path} was written with other settings; use a new --out or --no-resume")
        model.load_state_dict(saved["model"])
        optim.load_state_dict(saved["optim"])
        sched.load_state_dict(saved["sched"])
        state = saved["state"]
    start = time.time()
    bar = tqdm(range(state["epoch"], cfg.epochs), desc=f"dynamics {cfg.grouping}", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        batches = range(0, len(order), cfg.batch_size)
        if cfg.max_batches_per_epoch > 0:
            batches = batches[: cfg.max_batches_per_epoch]
        total, count = 0.0, 0
        step_start = time.perf_counter()
        for i in batches:
            rows = order[i : i + cfg.batch_size]
            hist, nxt = train.history(rows).to(device), train.next_q[rows].to(device)
            pred = model(hist)
            loss = torch.mean(((pred - nxt) / model.out_std) ** 2)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total, count = total + loss.item() * len(rows), count + len(rows)
        train_seconds = time.perf_counter() - step_start
        sched.step()
        errors = prediction_errors(model, evald)
        state["history"].append({"epoch": epoch, "train_loss": total / max(count, 1), "eval_mae": errors["mae"],
                                 "eval_rmse": errors["rmse"], "train_samples": count, "train_seconds": train_seconds})
        if errors["mae"] < state["best_eval"]:
            state["best_eval"], state["best_epoch"] = errors["mae"], epoch
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        state["epoch"] = epoch + 1
        _save_atomic({"config": cfg.to_dict(), "model": model.state_dict(), "optim": optim.state_dict(),
                      "sched": sched.state_dict(), "state": state}, ckpt_path)
        bar.set_postfix(loss=f"{total / max(count, 1):.4f}", eval_mae=f"{errors['mae']:.5f}")
        if on_epoch is not None:
            on_epoch(epoch, state["history"][-1])
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.cpu().eval()
    final = prediction_errors(model, evald)
    trained = [e for e in state["history"] if "train_seconds" in e]  # training steps incl. window gathering
    samples_per_s = sum(e["train_samples"] for e in trained) / max(sum(e["train_seconds"] for e in trained), 1e-9)
    report = {"train_rows": len(train), "eval_rows": len(evald), "initial_eval": initial, "eval": final,
              "best_epoch": state["best_epoch"], "epochs": cfg.epochs, "seconds": time.time() - start,
              "train_samples_per_s": samples_per_s,
              "history": state["history"], "per_joint_eval_mae": per_joint_mae(model, evald)}
    record = {"kind": "dynamics", "model": model.config(), "state_dict": model.state_dict(), "config": cfg.to_dict(),
              "fitted_on": fitted_on, "input_ranges": ranges, "report": report}
    _save_atomic(record, out_dir / MODEL_FILE)
    (out_dir / "dynamics_report.json").write_text(json.dumps(
        {k: v for k, v in record.items() if k != "state_dict"}, indent=1))
    return model, report


def evaluate_dynamics(model: nn.Module, paths: list[str], split: str = "all", eval_fraction: float = 0.1,
                      seed: int = 0, wrists: tuple[str, ...] = ()) -> dict[str, float]:
    """One-step errors of a model on the datasets' rows: all of them (e.g. an OOD set), or the `eval` / `train`
    episodes of the 9:1 split that training with the same eval_fraction and seed used."""
    if split not in ("all", "train", "eval"):
        raise ValueError(f"split must be all, train or eval, got {split!r}")
    window = model.window
    data = load_windows(paths, window, eval_fraction, seed, split=split != "all", wrists=tuple(wrists))[split]
    errors = prediction_errors(model, data)
    errors["rows"] = len(data)
    return errors


# ---------------------------------------------------------------------------------------- export
KIND = "dynamics"
INPUT_NAME, OUTPUT_NAME = "history", "next_q"
META_WINDOW = "dexndm_window"
META_GROUPING = "dexndm_grouping"
META_FITTED_ON = "dexndm_fitted_on"  # JSON list of {role: pretrain | finetune, datasets, train_rows}
META_INPUT_RANGES = "dexndm_input_ranges"  # JSON {"position": [[min, max] x 16], "target": [[min, max] x 16]} rad (contract)


def example_histories(batch: int, window: int, seed: int = 0) -> np.ndarray:
    """Plausible random inputs [batch, 16, W, 2]: positions inside the limits, targets near them."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(hand.LOWER, hand.UPPER, size=(batch, window, hand.NUM_JOINTS))
    a = np.clip(q + rng.normal(0.0, 0.1, size=q.shape), hand.LOWER, hand.UPPER)
    return np.stack([q, a], axis=-1).transpose(0, 2, 1, 3).astype(np.float32)


def dynamics_metadata(model: DynamicsModel, record: dict) -> dict[str, str]:
    """The metadata strings of dynamics.onnx: the runtime contract's keys (dexndm_policy.contract
    .dynamics_metadata: kind, joints, W, per-joint position and target ranges, config, data) plus the grouping
    and what it was fitted on."""
    from dexndm_policy import contract

    fitted = record.get("fitted_on", [])
    report = record.get("report", {})
    config = {**record.get("config", {}), "model": model.config(), "eval": report.get("eval", {}),
              "best_epoch": report.get("best_epoch")}
    ranges = record.get("input_ranges", {})
    if "q" not in ranges or "target" not in ranges:
        raise ValueError("the dynamics record has no input ranges (q and target per joint); retrain with this version")
    meta = contract.dynamics_metadata(model.window, ranges["q"], ranges["target"], config,
                                      ",".join(p for entry in fitted for p in entry.get("datasets", [])))
    meta[META_GROUPING] = model.grouping
    meta[META_FITTED_ON] = json.dumps(fitted)
    return meta


def export_dynamics(model: DynamicsModel, record: dict, path: str | os.PathLike) -> float:
    """Write dynamics.onnx (history [N, 16, W, 2] -> next_q [N, 16]) with metadata; returns the parity error.

    Raises export.ParityError (and writes nothing) when onnxruntime and PyTorch differ by more than 1e-4 rad."""
    import logging
    import warnings

    import onnx

    from dexndm_training import export

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    sample = torch.from_numpy(example_histories(4, model.window))
    batch = torch.export.Dim("batch", min=1, max=65536)
    tmp = path.with_suffix(".partial.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.getLogger("torch").level
        logging.getLogger("torch").setLevel(logging.ERROR)
        try:
            torch.onnx.export(model, (sample,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes=({0: batch},), opset_version=export.OPSET, dynamo=True, verbose=False)
        finally:
            logging.getLogger("torch").setLevel(level)
    proto = onnx.load(str(tmp))
    for key, value in dynamics_metadata(model, record).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(tmp))
    error = onnx_parity_error(model, str(tmp))
    if error > export.PARITY_TOLERANCE:
        tmp.unlink()
        raise export.ParityError(f"onnxruntime differs from PyTorch by {error:.2e} (> {export.PARITY_TOLERANCE}); "
                                 "not written")
    tmp.replace(path)
    for leftover in path.parent.glob(tmp.name + ".data"):
        leftover.unlink()
    return error


@torch.no_grad()
def onnx_parity_error(model: DynamicsModel, onnx_path: str, batch: int = 64) -> float:
    """Max |onnxruntime - torch| (rad) of next_q on random plausible histories."""
    import onnxruntime as ort

    sample = example_histories(batch, model.window, seed=1)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: sample})[0]
    return float(np.max(np.abs(got - model(torch.from_numpy(sample)).numpy())))
