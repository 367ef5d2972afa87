"""Evaluation with the paper's metrics (TTF, RotR, RotP, Rot, GO success), per object set, wrist orientation
and axis set, against a zero-action baseline measured in the same run; a table, JSON and a plot.

`evaluate_rotation` is the single-condition check of the default model (its last printed line is
`rot_rad=... ttf=... rotp=... baseline_rot_rad=... baseline_ttf=... baseline_rotp=... episodes=...`); `evaluate_grid` sweeps the grid.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from dexndm_training import metrics
from dexndm_training.env import EnvConfig, RotationEnv, resolve_axes
from dexndm_training.rollout import rollout, zero_policy

TRAIN_OBJECTS = ("normal_cylinder", "normal_cuboid", "long_cuboid", "small_cylinder", "irregular")
TEST_OBJECTS = ("test_irregular",)
WRISTS = ("palm_up", "palm_down", "base_up", "base_down", "thumb_up", "thumb_down")
AXIS_SETS = ("principal", "general", "diagonal")
METRICS = ("rot", "ttf", "rotr", "rotp", "go_success")


def score(result, episode_steps: int, seed: int) -> dict[str, float]:
    """Summary metrics of a Rollout; GO goals are turns of U(pi/2, 2 pi) rad about each axis (seeded)."""
    goals = np.random.default_rng(seed).uniform(np.pi / 2, 2 * np.pi, size=len(result.alive))
    per = metrics.episode_metrics(result.object_quat, result.angvel, result.axis_world, result.alive,
                                  episode_steps, goal_angle=goals)
    return metrics.summarize(per)


def evaluate_condition(env_cfg: EnvConfig, policy, episodes: int, axes: np.ndarray | None = None,
                       baseline: bool = True) -> dict:
    """Policy (and zero-action baseline) over `episodes` episodes of one env config, same seeds for both."""
    per_env_axes = None if axes is None else axes[np.arange(episodes) % len(axes)]
    out = {}
    for who, fn in (("policy", policy), ("baseline", zero_policy))[: 2 if baseline else 1]:
        env = RotationEnv(replace(env_cfg, num_envs=episodes))  # a fresh env per run: same seeds, same draws
        try:
            out[who] = score(rollout(env, fn, per_env_axes), env_cfg.episode_steps, env_cfg.seed)
        finally:
            env.close()
    return out


def evaluate_rotation(policy, object_set: str = "normal_cylinder", axis: str = "z", wrist: str = "palm_up",
                      episodes: int = 50, seed: int = 1000, episode_steps: int = 400, threads: int = 2) -> dict:
    """One condition, policy vs zero action; returns both summaries and the key=value line."""
    cfg = EnvConfig(object=object_set, wrists=[wrist], axes=[axis], episode_steps=episode_steps, seed=seed,
                    threads=threads)
    start = time.time()
    result = evaluate_condition(cfg, policy, episodes)
    p, b = result["policy"], result["baseline"]
    result["seconds"] = time.time() - start
    result["condition"] = {"object": object_set, "axis": axis, "wrist": wrist, "episodes": episodes,
                           "episode_steps": episode_steps, "seed": seed, "world": "source"}
    result["line"] = (f"rot_rad={p['rot']:.3f} ttf={p['ttf']:.3f} rotp={p['rotp']:.3f} baseline_rot_rad={b['rot']:.3f} "
                      f"baseline_ttf={b['ttf']:.3f} baseline_rotp={b['rotp']:.3f} episodes={episodes}")
    return result


def evaluate_grid(policy, objects=TRAIN_OBJECTS + TEST_OBJECTS, wrists=WRISTS, axis_sets=AXIS_SETS,
                  episodes: int = 8, episode_steps: int = 400, seed: int = 2000, threads: int = 2,
                  progress: bool = True) -> list[dict]:
    """Rows {object, split, wrist, axis_set, policy: {...}, baseline: {...}} over the grid."""
    rows = []
    for obj in objects:
        for wrist in wrists:
            for axis_set in axis_sets:
                _, vectors = resolve_axes([axis_set])
                cfg = EnvConfig(object=obj, wrists=[wrist], axes=[axis_set], episode_steps=episode_steps,
                                seed=seed, threads=threads)
                start = time.time()
                res = evaluate_condition(cfg, policy, episodes, axes=vectors)
                rows.append({"object": obj, "split": "test" if obj in TEST_OBJECTS else "train", "wrist": wrist,
                             "axis_set": axis_set, **res})
                if progress:
                    print(f"eval {obj} {wrist} {axis_set}: rot {res['policy']['rot']:.2f} rad "
                          f"(baseline {res['baseline']['rot']:.2f}), ttf {res['policy']['ttf']:.2f} "
                          f"({time.time() - start:.0f} s)", flush=True)
    return rows


def aggregate(rows: list[dict], key: str) -> dict[str, dict[str, float]]:
    """Mean of each metric over the rows sharing rows[key] (e.g. 'axis_set', 'wrist', 'split')."""
    out: dict[str, dict[str, float]] = {}
    for value in dict.fromkeys(r[key] for r in rows):
        chosen = [r for r in rows if r[key] == value]
        out[value] = {f"{who}_{m}": float(np.mean([r[who][m] for r in chosen])) for who in ("policy", "baseline")
                      for m in METRICS}
    return out


def table(rows: list[dict]) -> str:
    """A Markdown table: one row per (split, object, wrist, axis set), policy / baseline."""
    head = "| split | object | wrist | axes | Rot (rad) | TTF | RotR | RotP (rad/s) | GO | base Rot | base TTF |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        p, b = r["policy"], r["baseline"]
        lines.append(f"| {r['split']} | {r['object']} | {r['wrist']} | {r['axis_set']} | {p['rot']:.2f} | "
                     f"{p['ttf']:.2f} | {p['rotr']:.1f} | {p['rotp']:.3f} | {p['go_success']:.2f} | "
                     f"{b['rot']:.2f} | {b['ttf']:.2f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str | os.PathLike) -> Path:
    """Bar charts of Rot and TTF per axis set, wrist and split (policy vs baseline), as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("split", "axis_set", "wrist")
    fig, axes = plt.subplots(2, len(keys), figsize=(4 * len(keys), 5.5))
    for col, key in enumerate(keys):
        agg = aggregate(rows, key)
        names = list(agg)
        x = np.arange(len(names))
        for row, metric in enumerate(("rot", "ttf")):
            ax = axes[row, col]
            ax.bar(x - 0.2, [agg[k][f"policy_{metric}"] for k in names], 0.4, label="policy")
            ax.bar(x + 0.2, [agg[k][f"baseline_{metric}"] for k in names], 0.4, label="zero action")
            ax.set_xticks(x, names, rotation=30, fontsize=8)
            ax.set_ylabel({"rot": "Rot (rad / 20 s)", "ttf": "TTF"}[metric])
            ax.set_title(f"by {key}", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_report(rows: list[dict], out_dir: str | os.PathLike, meta: dict | None = None) -> dict[str, Path]:
    """evaluation.json (rows and aggregates), evaluation.md (table) and evaluation.png in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {key: aggregate(rows, key) for key in ("split", "axis_set", "wrist", "object")}
    (out_dir / "evaluation.json").write_text(json.dumps({"meta": meta or {}, "summary": summary, "rows": rows}, indent=1))
    (out_dir / "evaluation.md").write_text(table(rows) + "\n")
    return {"json": out_dir / "evaluation.json", "table": out_dir / "evaluation.md",
            "plot": plot(rows, out_dir / "evaluation.png")}
