"""Learning curves: Rot and TTF on fresh episodes against env steps and wall time, as JSON and PNG.

A curve is a list of points {env_steps, wall_s, rot, ttf, ...}; the MPC teacher writes one per run
(`curve.json`, one point per round of fresh episodes), DAgger one per iteration (its student alone, per
object set). `dexndm-train curve RUN... --out DIR` gathers the
runs' curves into DIR/curves.json and plots them into DIR/curves.png.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def load(run: str | os.PathLike) -> list[dict]:
    """The curve of a run directory (its curve.json)."""
    path = Path(run) / "curve.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give a run directory written by dexndm-train mpc, dagger or ppo")
    return json.loads(path.read_text())


def series(run: str | os.PathLike) -> dict[str, list[dict]]:
    """{name: points} of a run directory: a teacher run (dexndm-train mpc) or a specialist run (dexndm-train ppo)
    is one series named after the directory; a DAgger run (dexndm-train dagger, points carry per-object results) gives one series per
    object, "<run>.<object>", its student alone on fresh episodes after each iteration."""
    points = load(run)
    name = Path(run).name
    objects = [k for k, v in (points[0] if points else {}).items() if isinstance(v, dict) and "rot" in v]
    if not objects:  # a teacher run or a PPO run (dexndm-train ppo): one series
        return {name: points}
    return {f"{name}.{obj}": [{"iteration": p["iteration"], "env_steps": p["env_steps"], "wall_s": p["wall_s"], **p[obj]}
                              for p in points] for obj in objects}


def write(runs: dict[str, list[dict]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """out_dir/curves.json (every run's points) and curves.png (Rot and TTF vs env steps and wall time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "curves.json").write_text(json.dumps(runs, indent=1))
    fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharey="row")
    colours = plt.get_cmap("tab20").colors  # 20 distinct colours: the default cycle repeats after 10 runs
    for i, (name, points) in enumerate(runs.items()):
        style = {"color": colours[i % len(colours)], "marker": "o" if i < len(colours) else "s"}
        steps = [p["env_steps"] / 1e3 for p in points]
        hours = [p["wall_s"] / 3600 for p in points]
        for row, key in enumerate(("rot", "ttf")):
            axes[row, 0].plot(steps, [p[key] for p in points], "-", label=name, ms=3, **style)
            axes[row, 1].plot(hours, [p[key] for p in points], "-", label=name, ms=3, **style)
    for col, xlabel in enumerate(("env steps (thousands)", "wall time (h, this machine)")):
        axes[1, col].set_xlabel(xlabel)
    axes[0, 0].set_ylabel("Rot (rad / 20 s episode)")
    axes[1, 0].set_ylabel("TTF")
    for ax in axes[0]:
        ax.axhline(6.28, color="grey", lw=0.8, ls="--")
    for ax in axes[1]:
        ax.axhline(0.8, color="grey", lw=0.8, ls="--")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="center right", fontsize=7)  # beside the plots
    fig.suptitle("fresh episodes per round (dashed: the aim, 2 pi rad and TTF 0.8)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    fig.savefig(out_dir / "curves.png", dpi=80)
    plt.close(fig)
    return {"json": out_dir / "curves.json", "plot": out_dir / "curves.png"}
