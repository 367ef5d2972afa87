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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from rsl_rl.algorithms import PPO as _RslPPO
from rsl_rl.models import MLPModel as _RslMLPModel
from rsl_rl.modules.normalization import EmpiricalNormalization
from rsl_rl.runners import OnPolicyRunner

from dexndm_description import hand
from dexndm_policy import observation
from dexndm_training.env import EnvConfig, RotationEnv, shift_gait_centre, target_to_delta
from dexndm_training.gait import Gait, GaitPolicy


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
    #: AR(1) coefficient of the exploration noise from one control step to the next (exploration.py); 0 draws
    #: it afresh every step, 0.9 holds a perturbation about half a second.
    noise_correlation: float = 0.0
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
    #: the PPO update's matrix products in bfloat16 (torch.autocast; weights, optimizer and collection stay float32)
    update_bf16: bool = False
    #: Fresh episodes the policy runs alone (deterministic, contract deltas) at every checkpoint, for the run's
    #: learning curve (curve.json: Rot, TTF, RotP vs env steps and wall time); 0 turns it off.
    eval_episodes: int = 16
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


#: One specialist config per object category (the paper trains one per training set).
SPECIALISTS: dict[str, EnvConfig] = {
    name: EnvConfig(object=name, wrists=["all", "random"], axes=["principal", "general"])
    for name in ("normal_cylinder", "normal_cuboid", "long_cuboid", "small_cylinder", "irregular")
}


class FusedNormalization(EmpiricalNormalization):
    """rsl_rl's observation normalizer, applied as one fused multiply-add, `x / (std + eps) - mean / (std + eps)`.

    rsl_rl's `(x - mean) / (std + eps)` broadcasts a subtraction and a division over the batch; on one torch thread
    (collection) that took 1.6 ms for 1024 x 501 on this CPU, `torch.addcmul` 0.07 ms. Same buffers, so
    checkpoints load either way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 / (self._std + self.eps)
        return torch.addcmul(-self._mean * scale, x, scale)


class MLPModel(_RslMLPModel):
    """rsl_rl's MLPModel with a cheaper observation normalizer (`FusedNormalization`) and normalizer update.

    rsl_rl updates the normalizer from the whole batch (16 k x 500 numbers at 1024 worlds) with `torch.var`,
    whose one-pass algorithm is memory-bound on this CPU: 34 ms for 16 k x 300 on one thread against 14 ms for
    the two-pass mean of squared deviations, the same statistic. Taken per observation group and joined, it
    skips a copy of the whole batch: 9.6 ms against 27.9 for 16 k x 501 on two threads. The running update is
    rsl_rl's own formula."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.obs_normalization:
            fused = FusedNormalization(self.obs_dim, eps=self.obs_normalizer.eps, until=self.obs_normalizer.until)
            fused.load_state_dict(self.obs_normalizer.state_dict())
            self.obs_normalizer = fused

    @torch.no_grad()
    def update_normalization(self, obs) -> None:
        norm = self.obs_normalizer if self.obs_normalization else None
        if norm is not None and torch.distributed.is_initialized():  # rsl_rl's own all-reduce path
            return super().update_normalization(obs)
        if norm is None or not norm.training or (norm.until is not None and norm.count >= norm.until):
            return
        # per group, then joined: concatenating the groups first (16 k x 500) costs twice the statistics
        means = [obs[group].mean(dim=0, keepdim=True) for group in self.obs_groups]
        mean_x = torch.cat(means, dim=-1)
        var_x = torch.cat([(obs[g] - m).square_().mean(dim=0, keepdim=True) for g, m in zip(self.obs_groups, means)], dim=-1)
        rows = obs[self.obs_groups[0]].shape[0]
        norm.count += rows
        rate = rows / norm.count
        delta_mean = mean_x - norm._mean
        norm._mean += rate * delta_mean
        norm._var += rate * (var_x - norm._var + delta_mean * (mean_x - norm._mean))
        norm._std = torch.sqrt(norm._var)


class DeferredValuePPO(_RslPPO):
    """rsl_rl's PPO with the critic run once per rollout instead of once per control step.

    During collection the critic only feeds GAE, and its weights and normalizer do not change until the update,
    so its values for all of a rollout's observations are the ones per-step calls would give. One batched call
    replaces `num_steps_per_env` small ones (about 2 % of an iteration at 1024 worlds); the time-out
    bootstrap (reward + gamma V(s) when an episode hits its step limit) is added once the values are known."""

    _time_outs: torch.Tensor | None = None  # [steps, envs, 1] the rollout's time-out flags

    def act(self, obs):
        """rsl_rl's act without the critic: actions, their log-probabilities and the observations."""
        self.transition.hidden_states = (self.actor.get_hidden_state(), self.critic.get_hidden_state())
        self.transition.actions = self.actor(obs, stochastic_output=True).detach()
        self.transition.values = torch.zeros(self.storage.num_envs, 1, device=self.device)  # filled in compute_returns
        self.transition.actions_log_prob = self.actor.get_output_log_prob(self.transition.actions).detach()
        self.transition.distribution_params = tuple(p.detach() for p in self.actor.output_distribution_params)
        self.transition.observations = obs
        return self.transition.actions

    def process_env_step(self, obs, rewards, dones, extras) -> None:
        if self._time_outs is None or self._time_outs.shape != self.storage.rewards.shape:
            self._time_outs = torch.zeros_like(self.storage.rewards)
        time_outs = extras.get("time_outs")
        self._time_outs[self.storage.step] = 0.0 if time_outs is None else time_outs.to(self.device).view(-1, 1).float()
        super().process_env_step(obs, rewards, dones, {k: v for k, v in extras.items() if k != "time_outs"})

    def compute_returns(self, obs) -> None:
        st = self.storage
        values = self.critic(st.observations.flatten(0, 1)).detach().view_as(st.values)
        st.values.copy_(values)
        st.rewards.add_(self.gamma * values * self._time_outs)
        super().compute_returns(obs)


def runner_config(cfg: PPOConfig) -> dict:
    """The rsl_rl 5.x train config dict for OnPolicyRunner."""
    model = lambda hidden: {"class_name": "dexndm_training.ppo:MLPModel", "hidden_dims": list(hidden),  # noqa: E731
                            "activation": "elu",
                            "obs_normalization": True}
    actor = model(cfg.actor_hidden)
    actor["distribution_cfg"] = {"class_name": "GaussianDistribution", "init_std": cfg.init_std}
    if cfg.noise_correlation > 0.0:
        actor["distribution_cfg"] = {"class_name": "dexndm_training.exploration:CorrelatedGaussianDistribution",
                                     "init_std": cfg.init_std, "correlation": cfg.noise_correlation}
    return {
        "num_steps_per_env": cfg.num_steps_per_env,
        "save_interval": cfg.save_interval,
        "obs_groups": {"actor": list(cfg.actor_groups), "critic": list(cfg.critic_groups)},
        "actor": actor,
        "critic": model(cfg.critic_hidden),
        "algorithm": {
            "class_name": "dexndm_training.ppo:DeferredValuePPO", "num_learning_epochs": cfg.num_learning_epochs,
            "num_mini_batches": cfg.num_mini_batches, "clip_param": cfg.clip_param, "gamma": cfg.gamma,
            "lam": cfg.lam, "value_loss_coef": 1.0, "entropy_coef": cfg.entropy_coef,
            "learning_rate": cfg.learning_rate, "max_grad_norm": cfg.max_grad_norm, "schedule": "adaptive",
            "desired_kl": cfg.desired_kl, "use_clipped_value_loss": True,
        },
        "logger": "tensorboard",
        "check_for_nan": True,
    }


class SpecialistRunner(OnPolicyRunner):
    """OnPolicyRunner that also saves and restores the env's reset count (the a_rot schedule) in checkpoints,
    and, when given a `curve` (LearningCurve), adds a point of fresh-episode metrics at every checkpoint."""

    curve: "LearningCurve | None" = None

    def save(self, path: str, infos: dict | None = None) -> None:
        super().save(path, {**(infos or {}), "env_resets": int(getattr(self.env, "resets", 0))})
        if self.curve is not None and not self.curve.has(self.current_learning_iteration):
            point = self.curve.add(self, self.current_learning_iteration)
            if self.logger.writer is not None:
                for key in ("rot", "ttf", "rotp"):
                    self.logger.writer.add_scalar(f"Eval/{key}", point[key], point["env_steps"])

    def load(self, path: str, load_cfg: dict | None = None, strict: bool = True, map_location: str | None = None) -> dict:
        infos = super().load(path, load_cfg, strict, map_location) or {}
        if "env_resets" in infos and hasattr(self.env, "resets"):
            self.env.resets = int(infos["env_resets"])
        return infos


class LearningCurve:
    """run_dir/curve.json: the actor alone on `episodes` fresh episodes (a new seed each point) at each
    checkpoint; points {iteration, env_steps, wall_s, rot, ttf, rotp}. Wall time counts on from the curve's last
    point when a run resumes."""

    def __init__(self, run_dir: Path, env_cfg: EnvConfig, episodes: int):
        self.path = Path(run_dir) / "curve.json"
        self.env_cfg = replace(env_cfg, num_envs=episodes, action_mode="delta")
        self.points: list[dict] = json.loads(self.path.read_text()) if self.path.exists() else []
        self.started = time.time() - (self.points[-1]["wall_s"] if self.points else 0.0)

    def has(self, iteration: int) -> bool:
        return any(q["iteration"] == iteration for q in self.points)

    def add(self, runner: OnPolicyRunner, iteration: int) -> dict:
        from dexndm_training.evaluate import evaluate_condition

        train_cfg = runner.env.cfg
        actor = contract_actor(runner.get_inference_policy(device=runner.device), train_cfg)
        seed = self.env_cfg.seed + 7919 * (iteration + 1)
        try:
            result = evaluate_condition(replace(self.env_cfg, seed=seed), actor, self.env_cfg.num_envs, baseline=False)
        finally:
            runner.alg.train_mode()  # get_inference_policy switched it to eval mode
        p = result["policy"]
        point = {"iteration": int(iteration), "env_steps": int((iteration + 1) * train_cfg.num_envs * runner.cfg["num_steps_per_env"]),
                 "wall_s": time.time() - self.started, "rot": p["rot"], "ttf": p["ttf"], "rotp": p["rotp"],
                 "episodes": self.env_cfg.num_envs, "seed": seed}
        self.points = [q for q in self.points if q["iteration"] < iteration] + [point]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.points, indent=1))
        os.replace(tmp, self.path)
        print(f"eval at iteration {iteration}: rot {p['rot']:+.3f} rad, ttf {p['ttf']:.3f}, rotp {p['rotp']:.3f} "
              f"({self.env_cfg.num_envs} fresh episodes)", flush=True)
        return point


def zero_last_layer(model: torch.nn.Module) -> None:
    """Zero the output layer of a model's MLP, so its mean action starts at 0."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The model_<iter>.pt with the highest iteration in run_dir, or None."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("model_*.pt") if (m := re.match(r"model_(\d+)\.pt$", p.name))]
    return max(found)[1] if found else None


def _with_threads(method, threads: int):
    """method, run with `threads` torch threads and the caller's count restored afterwards."""

    def threaded(*args, **kwargs):
        collection_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return method(*args, **kwargs)
        finally:
            torch.set_num_threads(collection_threads)

    return threaded


def make_runner(env: RotationEnv, cfg: PPOConfig, run_dir: str | os.PathLike | None) -> SpecialistRunner:
    torch.manual_seed(cfg.seed)
    runner = SpecialistRunner(env, runner_config(cfg), log_dir=None if run_dir is None else str(run_dir), device=cfg.device)
    if cfg.update_threads > 0:  # the physics threads sit idle during the update: let torch use those cores
        for name in ("compute_returns", "update"):  # the batched critic pass and the PPO epochs
            setattr(runner.alg, name, _with_threads(getattr(runner.alg, name), cfg.update_threads))
    if cfg.update_bf16:
        update = runner.alg.update

        def bf16_update(*args, **kwargs):
            with torch.autocast(device_type=torch.device(cfg.device).type, dtype=torch.bfloat16):
                return update(*args, **kwargs)

        runner.alg.update = bf16_update
    return runner


def train(env_cfg: EnvConfig, cfg: PPOConfig, run_dir: str | os.PathLike, resume: bool = True) -> SpecialistRunner:
    """Train (or continue) a specialist in run_dir for cfg.iterations more iterations; returns the runner."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run_config.json").write_text(json.dumps({"env": env_cfg.to_dict(), "ppo": cfg.to_dict()}, indent=1))
    env = RotationEnv(env_cfg)
    runner = make_runner(env, cfg, run_dir)
    if cfg.eval_episodes > 0:
        runner.curve = LearningCurve(run_dir, env_cfg, cfg.eval_episodes)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is None and env_cfg.action_mode == "gait_residual":
        zero_last_layer(runner.alg.get_policy())  # the run starts as the gait itself
    if checkpoint is not None:
        runner.load(str(checkpoint), map_location=cfg.device)
        runner.current_learning_iteration += 1
        print(f"resumed from {checkpoint} (iteration {runner.current_learning_iteration}, env resets {env.resets})", flush=True)
    start = time.time()
    runner.learn(cfg.iterations)
    print(f"trained {cfg.iterations} iterations in {time.time() - start:.0f} s -> {run_dir}", flush=True)
    env.close()
    return runner


class TargetModeActor:
    """A `target`-mode actor (EnvConfig.action_mode) read through the contract: it maps obs to the delta that
    steps the newest base target in the observation toward the target the actor asks for, so it runs in any
    delta-mode env, collector or evaluation like every other policy."""

    def __init__(self, actor, target_scale: float):
        self.actor, self.target_scale = actor, float(target_scale)

    @torch.no_grad()
    def __call__(self, obs) -> torch.Tensor:
        action = self.actor(obs).cpu().numpy()
        previous = obs["policy"][:, observation.HISTORY_SLICE].reshape(len(action), observation.HISTORY, -1)
        previous = previous[:, -1, hand.NUM_JOINTS:].cpu().numpy().astype(np.float64)
        return torch.as_tensor(target_to_delta(action, previous, self.target_scale), dtype=torch.float32)


class GaitResidualActor(GaitPolicy):
    """A `gait_residual`-mode actor read through the contract: the run's gait (a GaitPolicy, bound by rollout())
    played around each episode's grasp pose shifted as the env shifts it (env.shift_gait_centre) by the actor's
    output; the shift starts at zero with every episode."""

    def __init__(self, actor, env_cfg: EnvConfig):
        super().__init__(Gait.load(env_cfg.gait))
        self.actor, self.cfg = actor, env_cfg

    def bind(self, env: RotationEnv) -> None:
        super().bind(env)
        self.offset = np.zeros_like(self.base)

    @torch.no_grad()
    def centre(self, obs, fresh: np.ndarray) -> np.ndarray:
        self.offset[fresh] = 0.0
        self.offset = shift_gait_centre(self.offset, self.actor(obs).cpu().numpy().astype(np.float64), self.cfg)
        return self.base + self.offset


def contract_actor(actor, env_cfg: EnvConfig | dict):
    """The actor of a run as a policy of contract deltas, whatever its env's action_mode (a run_config's "env"
    dict or an EnvConfig)."""
    cfg = env_cfg if isinstance(env_cfg, EnvConfig) else EnvConfig.from_dict(env_cfg)
    if cfg.action_mode == "target":
        return TargetModeActor(actor, cfg.target_scale)
    if cfg.action_mode == "gait_residual":
        return GaitResidualActor(actor, cfg)
    return actor


def load_actor(run_dir_or_checkpoint: str | os.PathLike, env: RotationEnv, cfg: PPOConfig | None = None):
    """The deterministic actor of a checkpoint (newest in a run dir) as a callable obs TensorDict -> contract
    deltas (wrapped by `contract_actor` after the run's action_mode)."""
    path = Path(run_dir_or_checkpoint)
    run_env: dict = {}
    config_path = (path if path.is_dir() else path.parent) / "run_config.json"
    if config_path.exists():
        run_env = json.loads(config_path.read_text()).get("env", {})
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
    return contract_actor(runner.get_inference_policy(device=cfg.device), run_env)
