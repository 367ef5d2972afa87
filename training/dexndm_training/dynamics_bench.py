"""Training throughput of the joint-wise dynamics model: grouped weights vs a per-joint Python loop.

Both paths train the same 16 networks on the same batches in one run:

- batched: the networks of `DynamicsModel(grouping="joint")`, every layer one batched matrix product over [16, in, out]
  weights (`DynamicsModel.network`);
- loop: 16 ordinary `nn.Sequential` MLPs, one per joint, trained one after another in a Python loop: per
  batch, each joint's network takes its own forward pass, backward pass and AdamW step (16 separate
  models, the way per-joint models are trained without grouped weights);
- fused loop (reported beside them): the same 16 MLPs called in a loop, their losses summed before one
  backward pass and one optimizer step, the cheapest way to write the loop.

The loops' networks start as copies of the batched model's groups, so with the same initial weights all
paths compute the same loss on the same batch. Joint j's loss in the loop is its squared normalized error
divided by 16, so the 16 losses sum to the batched loss and every network gets the gradient it gets there;
AdamW acts per parameter, so all paths make the same updates (tested: equal loss curves).

What is timed is the networks' training step. The parameter-free part (a window's features, relative to
the newest position and normalized with the model's statistics; the normalized delta as label) is computed
once for all rows before timing, identically for every path. Steps of the paths are interleaved, `steps` of
each per repeat, so load from other processes hits all alike; samples/s are medians over repeats and
`speedup` is the median of the per-repeat ratios batched / loop. The data are windows of datasets
(`datasets`) or, by default, random plausible histories whose next positions follow a per-joint
first-order lag (each joint its own gain).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from dexndm_description import hand
from dexndm_training.dynamics import DEFAULT_WINDOW, DynamicsConfig, DynamicsModel, example_histories, load_windows


@dataclass
class BenchConfig:
    """Settings of `dexndm-train bench-dynamics`."""

    #: hidden widths of each joint's MLP (default: the networks `dexndm-train dynamics` trains)
    hidden: list[int] = field(default_factory=lambda: list(DynamicsConfig().hidden))
    window: int = DEFAULT_WINDOW  # W, steps of (q, target) per joint
    batch_size: int = DynamicsConfig.batch_size  # windows per training step (default: `dexndm-train dynamics`')
    steps: int = 20  # training steps of each path per repeat
    repeats: int = 5  # interleaved repeats; the figures are medians over them
    warmup: int = 3  # untimed steps of each path before the first repeat
    lr: float = 1e-3  # AdamW learning rate
    samples: int = 20_000  # synthetic windows (ignored with datasets)
    datasets: list[str] = field(default_factory=list)  # train on these datasets' windows instead
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def per_joint_networks(grouped: DynamicsModel) -> nn.ModuleList:
    """16 nn.Sequential MLPs holding copies of the joint-wise model's per-joint weights."""
    if grouped.grouping != "joint":
        raise ValueError(f"the per-joint loop mirrors a joint-wise model, got grouping {grouped.grouping!r}")
    nets = []
    for g in range(hand.NUM_JOINTS):
        layers: list[nn.Module] = []
        for layer in grouped.layers:
            layers += [_linear(layer, g), nn.ELU()]
        layers.append(_linear(grouped.head, g))
        nets.append(nn.Sequential(*layers))
    return nn.ModuleList(nets)


def _linear(grouped_layer, g: int) -> nn.Linear:
    weight = grouped_layer.weight[g].detach()  # [in, out]
    layer = nn.Linear(weight.shape[0], weight.shape[1])
    with torch.no_grad():
        layer.weight.copy_(weight.T)
        layer.bias.copy_(grouped_layer.bias[g].detach())
    return layer


def bench_data(cfg: BenchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(history [M, 16, W, 2], next_q [M, 16]) for the benchmark."""
    if cfg.datasets:
        data = load_windows(list(cfg.datasets), cfg.window, split=False)["all"]
        rows = torch.arange(len(data))
        return data.history(rows), data.next_q[rows]
    history = torch.from_numpy(example_histories(cfg.samples, cfg.window, cfg.seed))
    gains = torch.linspace(0.25, 0.7, hand.NUM_JOINTS)
    q, a = history[:, :, -1, 0], history[:, :, -1, 1]
    return history, q + gains * (a - q)


@torch.no_grad()
def training_inputs(model: DynamicsModel, history: torch.Tensor, next_q: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalized inputs [M, 16, 2W], normalized delta labels [M, 16]) as `dexndm-train dynamics` trains on."""
    x = (model.features(history) - model.in_mean) / model.in_std
    y = (next_q - history[:, :, -1, 0] - model.out_mean) / model.out_std
    return x, y


class Trainer:
    """AdamW steps of the batched networks over a seeded batch order (the same for every path)."""

    def __init__(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: BenchConfig):
        self.module, self.x, self.y, self.cfg = module, x, y, cfg
        self.optim = torch.optim.AdamW(module.parameters(), lr=cfg.lr, fused=True)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.losses: list[float] = []

    def batches(self, count: int) -> list[torch.Tensor]:
        return [torch.randint(0, len(self.y), (self.cfg.batch_size,), generator=self.gen) for _ in range(count)]

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.mean((self.module.network(x)[..., 0] - y) ** 2)

    def steps(self, count: int) -> float:
        """Run `count` training steps; returns their wall time (s)."""
        batches = self.batches(count)
        start = time.perf_counter()
        for rows in batches:
            loss = self.loss(self.x[rows], self.y[rows])
            self.optim.zero_grad(set_to_none=True)
            loss.backward()
            self.optim.step()
            self.losses.append(loss.item())
        return time.perf_counter() - start


class FusedLoopTrainer(Trainer):
    """The 16 networks called in a loop, one summed loss, one backward pass, one optimizer."""

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        joints = len(self.module)
        return sum(torch.mean((net(x[:, j])[:, 0] - y[:, j]) ** 2) for j, net in enumerate(self.module)) / joints


class LoopTrainer(Trainer):
    """Each joint's network trained on its own: forward, backward and an AdamW step per joint and batch."""

    def __init__(self, nets: nn.ModuleList, x: torch.Tensor, y: torch.Tensor, cfg: BenchConfig):
        super().__init__(nets, x, y, cfg)
        self.optims = [torch.optim.AdamW(net.parameters(), lr=cfg.lr, fused=True) for net in nets]

    def steps(self, count: int) -> float:
        batches = self.batches(count)
        joints = len(self.optims)
        start = time.perf_counter()
        for rows in batches:
            x, y = self.x[rows], self.y[rows]
            total = 0.0
            for j, (net, optim) in enumerate(zip(self.module, self.optims)):
                loss = torch.mean((net(x[:, j])[:, 0] - y[:, j]) ** 2) / joints
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                total += loss.item()
            self.losses.append(total)
        return time.perf_counter() - start


def make_paths(cfg: BenchConfig) -> dict[str, Trainer]:
    """The three trainers, on the same data and from the same initial weights."""
    torch.manual_seed(cfg.seed)
    history, next_q = bench_data(cfg)
    model = DynamicsModel(cfg.window, "joint", tuple(cfg.hidden))
    model.fit_normalizer(history[:200_000], next_q[:200_000])
    x, y = training_inputs(model, history, next_q)
    return {"batched": Trainer(model, x, y, cfg), "loop": LoopTrainer(per_joint_networks(model), x, y, cfg),
            "fused_loop": FusedLoopTrainer(per_joint_networks(model), x, y, cfg)}


def run_bench(cfg: BenchConfig, progress: bool = True) -> dict:
    """Interleaved timing of the paths; returns the figures and every path's loss curve."""
    from tqdm import tqdm

    if cfg.steps < 1 or cfg.repeats < 1 or cfg.batch_size < 1 or cfg.warmup < 0:
        raise ValueError("steps, repeats and batch_size must be >= 1 and warmup >= 0")
    paths = make_paths(cfg)
    for trainer in paths.values():
        trainer.steps(cfg.warmup)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in tqdm(range(cfg.repeats), desc="bench-dynamics", unit="repeat", disable=not progress):
        for name, trainer in paths.items():
            rates[name].append(cfg.steps * cfg.batch_size / trainer.steps(cfg.steps))
    losses = {name: trainer.losses for name, trainer in paths.items()}
    out = {"config": cfg.to_dict(), "rows": len(paths["batched"].y), "rates": rates, "losses": losses}
    for name in paths:
        out[f"{name}_samples_per_s"] = statistics.median(rates[name])
    out["speedup"] = statistics.median([b / lo for b, lo in zip(rates["batched"], rates["loop"])])
    out["speedup_vs_fused_loop"] = statistics.median([b / lo for b, lo in zip(rates["batched"], rates["fused_loop"])])
    out["max_loss_difference"] = max(float(np.max(np.abs(np.subtract(losses["batched"], losses[name]))))
                                     for name in ("loop", "fused_loop"))
    return out
