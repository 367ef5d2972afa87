"""Behaviour cloning of the generalist from successful rollouts (the paper's section 3.1, second half).

Observations are rebuilt from a dataset's rows with dexndm_policy's ObservationHistory, the same code the
robot runs, so training and deployment agree on the layout. The label of step t is the policy output that
produced it, delta_t = clip((a_t - a_{t-1}) / ACTION_SCALE, -1, 1) on base targets, with a_{-1} = q_0 (the
environment starts every episode with the base target at the reset pose). Several datasets (one per
specialist) are merged. Splits are by episode. With more than one process (torchrun), training runs with
DistributedDataParallel; a single process is plain PyTorch on the chosen device.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dexndm_description import hand
from dexndm_policy import observation
from dexndm_training.dataset import Dataset
from dexndm_training.networks import GeneralistPolicy

log = logging.getLogger(__name__)


@dataclass
class BCConfig:
    """Behaviour-cloning settings. width x blocks: the paper uses 1024 x 5 at GPU scale; CPU default 256 x 2."""

    width: int = 256  # hidden width
    blocks: int = 2  # residual blocks
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_fraction: float = 0.1
    q_noise: float = 0.005  # rad, uniform +- on observed joint angles (the env's joint noise)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    only_successful: bool = True  # clone only episodes that kept the object (--no-only-successful: all)
    motion: bool = True  # the network also sees the history's steps (networks.motion_features)
    datasets: list[str] = field(default_factory=list)  # dataset directories (dexndm-train collect / mpc)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks this process's GPU (LOCAL_RANK under torchrun) when one exists, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}")
        return torch.device("cpu")
    return torch.device(name)


def episode_observations(q: np.ndarray, base_target: np.ndarray, wrist: np.ndarray, axis: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(obs [E, L, 327], delta [E, L, 16]) for E equally long episodes: q, base_target [E, L, 16], wrist [E, L, 4], axis [E, L, 3]."""
    episodes, length = q.shape[:2]
    history = observation.ObservationHistory(episodes)
    previous = np.concatenate([q[:, :1], base_target[:, :-1]], axis=1)  # a_{t-1}, with a_{-1} = q_0
    history.reset(q[:, 0], previous[:, 0])
    obs = np.empty((episodes, length, observation.OBS_DIM), dtype=np.float32)
    for t in range(length):
        if t > 0:
            history.push(q[:, t], previous[:, t])
        obs[:, t] = history.observation(wrist[:, t], axis[:, t])
    delta = np.clip((base_target - previous) / hand.ACTION_SCALE, -1.0, 1.0).astype(np.float32)
    return obs, delta


def load_pairs(datasets: list[Dataset], only_successful: bool = True, eval_fraction: float = 0.1, seed: int = 0
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (obs, delta), "eval": (obs, delta)} from the datasets' episodes, split by episode."""
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "eval": []}
    for ds in datasets:
        train_ids, eval_ids = ds.split_episodes(eval_fraction, seed)
        for split, ids in (("train", train_ids), ("eval", eval_ids)):
            chosen = [i for i in ids if ds.episodes[i]["success"] or not only_successful]
            by_length: dict[int, list[int]] = {}
            for i in chosen:
                by_length.setdefault(ds.episodes[i]["length"], []).append(i)
            for length, group in by_length.items():
                rows = np.concatenate([np.arange(ds.episodes[i]["start"], ds.episodes[i]["start"] + length) for i in group])
                take = {k: np.asarray(ds[k][rows]).reshape(len(group), length, -1) for k in ("q", "base_target", "wrist", "axis")}
                obs, delta = episode_observations(take["q"], take["base_target"], take["wrist"], take["axis"])
                if "label" in ds.arrays:  # an expert labelled these states (DAgger): clone its deltas
                    delta = np.clip(np.asarray(ds["label"][rows]).reshape(len(group), length, -1), -1.0, 1.0)
                parts[split].append((obs.reshape(-1, observation.OBS_DIM), delta.reshape(-1, hand.NUM_JOINTS)))
    if not parts["train"]:
        raise ValueError("no successful episodes to clone in the given datasets; collect rollouts first "
                         "(dexndm-train collect) or pass --no-only-successful")
    out = {}
    for split, chunks in parts.items():
        if chunks:
            out[split] = (np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]))
        else:
            out[split] = out["train"]  # a single episode: evaluate on the training data
    return out


def _distributed() -> tuple[bool, int, int]:
    """(enabled, rank, world size) from torchrun's environment, when torch.distributed can run here."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not torch.distributed.is_available():
        return False, 0, 1
    return True, int(os.environ.get("RANK", "0")), world


def _add_q_noise(obs: torch.Tensor, scale: float, gen: torch.Generator) -> torch.Tensor:
    if scale <= 0:
        return obs
    noise = torch.zeros_like(obs)
    hist = noise[:, observation.HISTORY_SLICE].view(len(obs), observation.HISTORY, observation.STEP_DIM)
    hist[..., : hand.NUM_JOINTS] = (torch.rand(hist[..., : hand.NUM_JOINTS].shape, generator=gen, device=obs.device) * 2 - 1) * scale
    return obs + noise


def train_bc(cfg: BCConfig, out_dir: str | os.PathLike, progress: bool = True) -> tuple[GeneralistPolicy, dict]:
    """Train the generalist; writes out_dir/{generalist.pt, bc_config.json, bc_report.json}; returns (model on CPU, report)."""
    if not cfg.datasets:
        raise ValueError("BCConfig.datasets is empty: give one or more dataset directories")
    distributed, rank, world = _distributed()
    device = resolve_device(cfg.device)
    if distributed:
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = load_pairs([Dataset(p) for p in cfg.datasets], cfg.only_successful, cfg.eval_fraction, cfg.seed)
    train_obs, train_delta = (torch.from_numpy(a) for a in pairs["train"])
    eval_obs, eval_delta = (torch.from_numpy(a).to(device) for a in pairs["eval"])
    model = GeneralistPolicy(cfg.width, cfg.blocks, cfg.motion)
    model.normalizer.fit(torch.cat([model.inputs(train_obs[i : i + 65536]) for i in range(0, len(train_obs), 65536)]))
    model.to(device)
    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optim = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=max(cfg.epochs, 1))
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed + rank)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1000 + rank)
    shard = torch.arange(rank, len(train_obs), world)  # each rank its own rows
    zero_eval = float(torch.mean(eval_delta**2))

    @torch.no_grad()
    def evaluate() -> float:
        model.eval()
        pred = torch.cat([model(eval_obs[i : i + 8192]) for i in range(0, len(eval_obs), 8192)])
        model.train()
        return float(torch.mean((pred - eval_delta) ** 2))

    history, best, best_state, start = [], float("inf"), None, time.time()
    initial = evaluate()
    epochs = range(cfg.epochs)
    if progress and rank == 0:
        from tqdm import tqdm
        epochs = tqdm(epochs, desc="bc", unit="epoch")
    for epoch in epochs:
        order = shard[torch.randperm(len(shard), generator=gen)]
        total, count = 0.0, 0
        for i in range(0, len(order), cfg.batch_size):
            rows = order[i : i + cfg.batch_size]
            obs = _add_q_noise(train_obs[rows].to(device), cfg.q_noise, noise_gen)
            loss = torch.mean((net(obs) - train_delta[rows].to(device)) ** 2)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total, count = total + loss.item() * len(rows), count + len(rows)
        sched.step()
        eval_loss = evaluate()
        history.append({"epoch": epoch, "train_mse": total / max(count, 1), "eval_mse": eval_loss})
        if eval_loss < best:
            best, best_state = eval_loss, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if progress and rank == 0 and hasattr(epochs, "set_postfix"):
            epochs.set_postfix(train=f"{total / max(count, 1):.4f}", eval=f"{eval_loss:.4f}")
    model.load_state_dict(best_state if best_state is not None else model.state_dict())
    model.cpu().eval()
    report = {
        "train_rows": int(len(train_obs)), "eval_rows": int(len(eval_obs)), "initial_eval_mse": initial,
        "best_eval_mse": best, "zero_action_eval_mse": zero_eval, "epochs": cfg.epochs, "world_size": world,
        "device": str(device), "seconds": time.time() - start, "history": history,
    }
    if rank == 0:
        torch.save({"state_dict": model.state_dict(), "config": cfg.to_dict()}, out_dir / "generalist.pt")
        (out_dir / "bc_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        (out_dir / "bc_report.json").write_text(json.dumps(report, indent=1))
    if distributed:
        torch.distributed.destroy_process_group()
    return model, report


def load_generalist(path: str | os.PathLike) -> GeneralistPolicy:
    """A generalist saved by train_bc, on the CPU in eval mode."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    cfg = saved["config"]
    model = GeneralistPolicy(cfg["width"], cfg["blocks"], cfg.get("motion", False))
    model.load_state_dict(saved["state_dict"])
    return model.eval()
