"""DAgger from the sampling-MPC teacher into a privileged PPO actor: a network specialist that PPO can go on with.

The MPC teacher turns the cuboid (4-10 rad in 20 s), but proprioceptive students cloned from it did not: they
copy its continuation, not its decisions. This clones it into the privileged actor of a `dexndm-train ppo` run
(`--actor-groups policy privileged`, delta actions), which sees the object's pose and velocity the teacher plans
with. Each iteration:

1. fresh episodes (env seed + iteration) in which the student acts, or the teacher with probability beta
   (iteration 0: the teacher alone), while the teacher plans at every tick and labels the visited state;
2. the iteration's observations (both groups) and labels are saved as `OUT/distill_NNNN.npz` (data: not for git);
3. the actor's mean is fitted to every label so far (MSE; the observation normalizer is set from the data);
4. the actor is saved as rsl_rl's `OUT/model_NNNN.pt` and run alone on fresh episodes for `OUT/curve.json`.

OUT is then an ordinary PPO run directory: `evaluate`, `dagger --teacher-run` and `ppo --run-dir OUT` (fine-tuning,
which resumes from the newest model) all read it. The same command again resumes after the last saved iteration.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from dexndm_training import mpc, ppo
from dexndm_training.env import EnvConfig, RotationEnv
from dexndm_training.rollout import rollout


@dataclass
class DistillConfig:
    """Settings of the MPC -> privileged actor distillation."""

    beta: float = 0.5  # the teacher's share of the executed ticks at iteration 1; x decay per iteration after
    beta_decay: float = 0.7
    beta_min: float = 0.1
    epochs: int = 30  # passes over all labels so far, per iteration
    batch_size: int = 512
    learning_rate: float = 1e-3
    eval_episodes: int = 8  # fresh episodes the student runs alone after each iteration (0: none)

    def beta_at(self, iteration: int) -> float:
        """The teacher's share of executed ticks at this iteration (1 at iteration 0: no student yet)."""
        return 1.0 if iteration == 0 else max(self.beta_min, self.beta * self.beta_decay ** (iteration - 1))

    def to_dict(self) -> dict:
        return asdict(self)


class _Recorder(mpc.DaggerMix):
    """DAgger's executed policy (mpc.DaggerMix: the teacher labels every tick, the student acts, the teacher
    instead with probability beta) that also keeps both observation groups of every tick."""

    def __init__(self, teacher, student, beta: float, seed: int):
        super().__init__(teacher, student, beta, seed)
        self.policy_obs, self.privileged_obs = [], []

    def __call__(self, obs):
        self.policy_obs.append(obs["policy"].numpy().copy())
        self.privileged_obs.append(obs["privileged"].numpy().copy())
        return super().__call__(obs)


def _alive_rows(arrays: list[list[np.ndarray]], alive: np.ndarray) -> list[np.ndarray]:
    """Stack per-tick [N, D] lists to [N, T, D] and keep each world's ticks before its fall."""
    out = []
    for ticks in arrays:
        x = np.stack(ticks, axis=1)
        keep = np.arange(x.shape[1])[None, :] < np.minimum(alive, x.shape[1])[:, None]
        out.append(x[keep].astype(np.float32))
    return out


def fit(actor, data: list[Path], cfg: DistillConfig, seed: int) -> dict:
    """Fit the actor's mean to every label in `data` (npz files); returns train/eval MSE (eval: a 10 % split)."""
    loaded = [np.load(p) for p in data]
    obs = torch.from_numpy(np.concatenate([np.concatenate([d["policy"], d["privileged"]], axis=1) for d in loaded]))
    label = torch.from_numpy(np.concatenate([d["label"] for d in loaded]))
    normalizer = actor.obs_normalizer
    with torch.no_grad():
        normalizer._mean.copy_(obs.mean(0, keepdim=True))
        normalizer._var.copy_(obs.var(0, keepdim=True))
        normalizer._std.copy_(normalizer._var.sqrt())
        normalizer.count.fill_(len(obs))
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(obs), generator=gen)
    split = max(1, len(obs) // 10)
    eval_idx, train_idx = order[:split], order[split:]
    params = list(actor.mlp.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)

    def predict(x):
        return actor.mlp(normalizer(x))

    for _ in range(cfg.epochs):
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for start in range(0, len(perm), cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            loss = torch.mean((predict(obs[idx]) - label[idx]) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return {"train_mse": float(torch.mean((predict(obs[train_idx]) - label[train_idx]) ** 2)),
                "eval_mse": float(torch.mean((predict(obs[eval_idx]) - label[eval_idx]) ** 2)),
                "zero_mse": float(torch.mean(label[eval_idx] ** 2)), "rows": int(len(obs))}


def run(env_cfg: EnvConfig, teacher_cfg: mpc.MPCConfig, ppo_cfg: ppo.PPOConfig, cfg: DistillConfig, out,
        iterations: int, progress: bool = True) -> list[dict]:
    """Run `iterations` more iterations into the PPO run directory `out`; returns the curve."""
    from dexndm_training.evaluate import evaluate_condition

    if env_cfg.action_mode != "delta":
        raise ValueError("the MPC teacher's labels are contract deltas: distill into --action-mode delta")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ppo_cfg = replace(ppo_cfg, actor_groups=["policy", "privileged"])
    config = {"env": env_cfg.to_dict(), "ppo": ppo_cfg.to_dict()}
    mpc.resume_config(out, {**config, "mpc": teacher_cfg.to_dict(), "distill": cfg.to_dict()},
                      {"env": EnvConfig().to_dict(), "ppo": ppo.PPOConfig().to_dict(),
                       "mpc": mpc.MPCConfig().to_dict(), "distill": DistillConfig().to_dict()})
    (out / "run_config.json").write_text(json.dumps(config, indent=1))
    curve_path = out / "curve.json"
    curve = json.loads(curve_path.read_text()) if curve_path.exists() else []
    start = len(curve)
    for i in range(start, start + iterations):
        began = time.time()
        env = RotationEnv(replace(env_cfg, seed=env_cfg.seed + i))
        runner = ppo.make_runner(env, ppo_cfg, None)
        checkpoint = ppo.latest_checkpoint(out)
        if checkpoint is not None:
            runner.load(str(checkpoint), map_location=ppo_cfg.device)
        student = runner.get_inference_policy() if checkpoint is not None else None
        teacher = mpc.PredictiveSampler(env, replace(teacher_cfg, seed=teacher_cfg.seed + i))
        recorder = _Recorder(teacher, student, cfg.beta_at(i), seed=env_cfg.seed + i)
        label = f"distill {i} (beta {cfg.beta_at(i):.2f})"
        try:
            result = rollout(env, mpc._Progress(recorder, env_cfg.episode_steps, label) if progress else recorder)
        finally:
            teacher.close()
        policy_obs, privileged_obs, label = _alive_rows(
            [recorder.policy_obs, recorder.privileged_obs, recorder.labels], result.alive)
        data = out / f"distill_{i:04d}.npz"
        tmp = data.with_name(data.stem + ".tmp.npz")
        np.savez(tmp, policy=policy_obs, privileged=privileged_obs, label=label)
        tmp.replace(data)
        executed = mpc._episode_metrics(result)
        runner.alg.train_mode()
        fitted = fit(runner.alg.get_policy(), sorted(out.glob("distill_[0-9]*.npz")), cfg, env_cfg.seed + i)
        runner.current_learning_iteration = i
        runner.save(str(out / f"model_{i}.pt"))
        env_steps = (curve[-1]["env_steps"] if curve else 0) + env.num_envs * len(recorder.labels)
        point = {"iteration": i, "env_steps": env_steps, "beta": cfg.beta_at(i),
                 "executed_rot": float(np.mean(executed["rot"])),
                 "executed_ttf": float(np.mean(executed["ttf"])), **fitted}
        if cfg.eval_episodes > 0:
            actor = ppo.contract_actor(runner.get_inference_policy(), env_cfg)  # the actor just fitted and saved
            score = evaluate_condition(replace(env_cfg, seed=env_cfg.seed + 10_000 + i), actor, cfg.eval_episodes,
                                       baseline=False)["policy"]
            point.update(rot=score["rot"], ttf=score["ttf"], rotp=score["rotp"])
        env.close()
        point["wall_s"] = (curve[-1]["wall_s"] if curve else 0.0) + time.time() - began
        curve.append(point)
        curve_path.write_text(json.dumps(curve, indent=1))
        print("distill " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items()),
              flush=True)
    return curve
