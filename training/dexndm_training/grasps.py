"""How well the grasp cache holds, per object set and wrist: the report behind `dexndm-train grasps`.

Each cell builds the rotation env's grasp cache for one object set under one wrist (EnvConfig.grasp_candidates
poses jittered around the canonical grasp, kept when they hold the object for grasp_hold_steps ticks with
less than grasp_max_drift of motion) and reports the fraction kept. The env then draws every reset from
that cache, and keeps up to EnvConfig.reset_cache settled states per world for resets without settling.
"""
from __future__ import annotations

import time
from dataclasses import replace

from dexndm_training.env import EnvConfig, RotationEnv


def cache_success(object_set: str, wrist: str, cfg: EnvConfig = EnvConfig()) -> dict:
    """{object, wrist, candidates, kept, success_rate, seconds} for one cell."""
    start = time.time()
    env = RotationEnv(replace(cfg, object=object_set, wrists=[wrist]))
    try:
        kept = len(env.grasps)
        return {"object": object_set, "wrist": wrist, "candidates": max(cfg.grasp_candidates, 1), "kept": kept,
                "success_rate": float(env.grasp_success_rate), "seconds": time.time() - start}
    finally:
        env.close()


def table(rows: list[dict]) -> str:
    """Markdown: one row per object set, one column per wrist, the cache's success rate."""
    wrists = list(dict.fromkeys(r["wrist"] for r in rows))
    objects = list(dict.fromkeys(r["object"] for r in rows))
    rate = {(r["object"], r["wrist"]): r["success_rate"] for r in rows}
    lines = ["| object set | " + " | ".join(wrists) + " |", "|---|" + "---|" * len(wrists)]
    for obj in objects:
        lines.append(f"| {obj} | " + " | ".join(f"{rate[(obj, w)]:.2f}" if (obj, w) in rate else "-" for w in wrists) + " |")
    return "\n".join(lines)
