"""PPO specialists with rsl_rl: configs per object category, checkpoints that resume, TensorBoard logs.

The actor reads the `policy` group (the generalist contract, so a specialist is directly deployable and
its rollouts clone cleanly); the critic reads `policy` + `privileged` (asymmetric actor-critic). Set
`actor_groups` to ("policy", "privileged") for a fully privileged oracle actor. A run directory holds
rsl_rl's model_<iter>.pt checkpoints, TensorBoard event files and run_config.json; `train` resumes from
the newest checkpoint found there.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rsl_rl.runners import OnPolicyRunner

from dexndm_training.env import EnvConfig, RotationEnv


@dataclass
class PPOConfig:
    """rsl_rl 5.x PPO settings (turned into its dict config by `runner_config`)."""

    num_steps_per_env: int = 32  # control steps each env collects per iteration (batch = envs x steps)
    iterations: int = 1000  # training iterations (a resumed run extends to this)
    save_interval: int = 10  # iterations between checkpoints
    # Sized for a 2-core machine (python -m dexndm_training.bench): the update must not outweigh the physics.
    actor_hidden: list[int] = field(default_factory=lambda: [128, 128])
    critic_hidden: list[int] = field(default_factory=lambda: [128, 128])
    actor_groups: list[str] = field(default_factory=lambda: ["policy"])  # observation groups of the actor
    critic_groups: list[str] = field(default_factory=lambda: ["policy", "privileged"])  # ... and of the critic
    init_std: float = 0.3  # exploration noise integrates into the base target: keep it small
    learning_rate: float = 3e-4
    num_learning_epochs: int = 2
    num_mini_batches: int = 2
    gamma: float = 0.99
    lam: float = 0.95
    entropy_coef: float = 0.0
    desired_kl: float = 0.016
    clip_param: float = 0.2
    max_grad_norm: float = 1.0
    device: str = "cpu"  # network device: cpu, cuda, cuda:N (the physics always runs on CPU cores)
    update_threads: int = 0  # torch threads for the PPO update only (0: leave as set); collection keeps its own
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


#: One specialist config per object category (the paper trains one per training set).
SPECIALISTS: dict[str, EnvConfig] = {
    name: EnvConfig(object=name, wrists=["all", "random"], axes=["principal", "general"])
    for name in ("normal_cylinder", "normal_cuboid", "long_cuboid", "small_cylinder", "irregular")
}


def runner_config(cfg: PPOConfig) -> dict:
    """The rsl_rl 5.x train config dict for OnPolicyRunner."""
    model = lambda hidden: {"class_name": "MLPModel", "hidden_dims": list(hidden), "activation": "elu",  # noqa: E731
                            "obs_normalization": True}
    actor = model(cfg.actor_hidden)
    actor["distribution_cfg"] = {"class_name": "GaussianDistribution", "init_std": cfg.init_std}
    return {
        "num_steps_per_env": cfg.num_steps_per_env,
        "save_interval": cfg.save_interval,
        "obs_groups": {"actor": list(cfg.actor_groups), "critic": list(cfg.critic_groups)},
        "actor": actor,
        "critic": model(cfg.critic_hidden),
        "algorithm": {
            "class_name": "PPO", "num_learning_epochs": cfg.num_learning_epochs,
            "num_mini_batches": cfg.num_mini_batches, "clip_param": cfg.clip_param, "gamma": cfg.gamma,
            "lam": cfg.lam, "value_loss_coef": 1.0, "entropy_coef": cfg.entropy_coef,
            "learning_rate": cfg.learning_rate, "max_grad_norm": cfg.max_grad_norm, "schedule": "adaptive",
            "desired_kl": cfg.desired_kl, "use_clipped_value_loss": True,
        },
        "logger": "tensorboard",
        "check_for_nan": True,
    }


class SpecialistRunner(OnPolicyRunner):
    """OnPolicyRunner that also saves and restores the env's reset count (the a_rot schedule) in checkpoints."""

    def save(self, path: str, infos: dict | None = None) -> None:
        super().save(path, {**(infos or {}), "env_resets": int(getattr(self.env, "resets", 0))})

    def load(self, path: str, load_cfg: dict | None = None, strict: bool = True, map_location: str | None = None) -> dict:
        infos = super().load(path, load_cfg, strict, map_location) or {}
        if "env_resets" in infos and hasattr(self.env, "resets"):
            self.env.resets = int(infos["env_resets"])
        return infos


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The model_<iter>.pt with the highest iteration in run_dir, or None."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("model_*.pt") if (m := re.match(r"model_(\d+)\.pt$", p.name))]
    return max(found)[1] if found else None


def make_runner(env: RotationEnv, cfg: PPOConfig, run_dir: str | os.PathLike | None) -> SpecialistRunner:
    torch.manual_seed(cfg.seed)
    runner = SpecialistRunner(env, runner_config(cfg), log_dir=None if run_dir is None else str(run_dir), device=cfg.device)
    if cfg.update_threads > 0:  # the physics threads sit idle during the update: let torch use those cores
        update = runner.alg.update

        def threaded_update(*args, **kwargs):
            collection_threads = torch.get_num_threads()
            torch.set_num_threads(cfg.update_threads)
            try:
                return update(*args, **kwargs)
            finally:
                torch.set_num_threads(collection_threads)

        runner.alg.update = threaded_update
    return runner


def train(env_cfg: EnvConfig, cfg: PPOConfig, run_dir: str | os.PathLike, resume: bool = True) -> SpecialistRunner:
    """Train (or continue) a specialist in run_dir for cfg.iterations more iterations; returns the runner."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run_config.json").write_text(json.dumps({"env": env_cfg.to_dict(), "ppo": cfg.to_dict()}, indent=1))
    env = RotationEnv(env_cfg)
    runner = make_runner(env, cfg, run_dir)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        runner.load(str(checkpoint), map_location=cfg.device)
        runner.current_learning_iteration += 1
        print(f"resumed from {checkpoint} (iteration {runner.current_learning_iteration}, env resets {env.resets})", flush=True)
    start = time.time()
    runner.learn(cfg.iterations)
    print(f"trained {cfg.iterations} iterations in {time.time() - start:.0f} s -> {run_dir}", flush=True)
    env.close()
    return runner


def load_actor(run_dir_or_checkpoint: str | os.PathLike, env: RotationEnv, cfg: PPOConfig | None = None):
    """The deterministic actor of a checkpoint (newest in a run dir) as a callable obs TensorDict -> actions."""
    path = Path(run_dir_or_checkpoint)
    if path.is_dir():
        if cfg is None and (path / "run_config.json").exists():
            cfg = PPOConfig(**json.loads((path / "run_config.json").read_text())["ppo"])
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise FileNotFoundError(f"no model_*.pt checkpoint in {path}; train a specialist first (dexndm-train ppo)")
        path = checkpoint
    cfg = cfg or PPOConfig()
    resets = env.resets
    runner = make_runner(env, cfg, None)
    runner.load(str(path), map_location=cfg.device)
    env.resets = resets
    return runner.get_inference_policy(device=cfg.device)
