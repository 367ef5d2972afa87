"""The transition dataset layout shared by simulation rollouts and converted robot bags.

A dataset is a directory:

    index.json         layout version, joint names, episodes (start, length, success, source, wrist,
                       object_set), array dtypes/shapes, provenance
    q.npy              float32 [T, 16]  joint positions q_t (rad, motor-ID order)
    target.npy         float32 [T, 16]  executed target a_t sent answering q_t (rad)
    base_target.npy    float32 [T, 16]  the base policy's target (equal to target without a residual)
    next_q.npy         float32 [T, 16]  q_{t+1}, the state that followed
    wrist.npy          float32 [T, 4]   wrist quaternion (x, y, z, w)
    axis.npy           float32 [T, 3]   rotation axis (palm frame)
    episode.npy        int32   [T]      episode index
    step.npy           int32   [T]      step index within the episode
    success.npy        bool    [T]      the episode survived all its steps
    label.npy          float32 [T, 16]  optional: an expert's delta at q_t (DAgger: the teacher labels the
                                        student's states); without it BC derives the delta from base_target

Rows of one episode are contiguous and in time order, so histories can be cut from them.
Arrays open with mmap_mode='r'. Splits are by episode, never by row.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dexndm_description import hand

LAYOUT_VERSION = 1

ARRAYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "q": ("float32", (hand.NUM_JOINTS,)),
    "target": ("float32", (hand.NUM_JOINTS,)),
    "base_target": ("float32", (hand.NUM_JOINTS,)),
    "next_q": ("float32", (hand.NUM_JOINTS,)),
    "wrist": ("float32", (4,)),
    "axis": ("float32", (3,)),
    "episode": ("int32", ()),
    "step": ("int32", ()),
    "success": ("bool", ()),
}
PER_STEP = ("q", "target", "base_target", "next_q", "wrist", "axis")
#: Arrays a dataset may hold or not; written when every episode carries them.
OPTIONAL: dict[str, tuple[str, tuple[int, ...]]] = {"label": ("float32", (hand.NUM_JOINTS,))}


@dataclass
class Episode:
    """One episode's per-step arrays (length L): q, target, next_q [L, 16]; wrist [L, 4] or [4]; axis [L, 3] or [3]."""

    q: np.ndarray
    target: np.ndarray
    next_q: np.ndarray
    wrist: np.ndarray
    axis: np.ndarray
    base_target: np.ndarray | None = None
    label: np.ndarray | None = None  # [L, 16] an expert's delta at each step (OPTIONAL["label"])
    success: bool = True
    source: str = ""
    wrist_label: str = ""
    object_set: str = ""

    def __len__(self) -> int:
        return len(self.q)


def write_dataset(path: str | os.PathLike, episodes: list[Episode], provenance: dict | None = None) -> Path:
    """Write episodes as a dataset directory (atomically: a temp dir renamed into place)."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; choose a new dataset directory or remove it")
    if not episodes:
        raise ValueError("no episodes to write")
    tmp = path.with_name(path.name + f".partial-{os.getpid()}")
    tmp.mkdir(parents=True)
    optional = [name for name in OPTIONAL if all(getattr(ep, name) is not None for ep in episodes)]
    partly = [name for name in OPTIONAL if name not in optional and any(getattr(ep, name) is not None for ep in episodes)]
    if partly:
        raise ValueError(f"only some episodes carry {partly}: give it for every episode or for none")
    layout = {**ARRAYS, **{name: OPTIONAL[name] for name in optional}}
    columns: dict[str, list[np.ndarray]] = {name: [] for name in layout}
    meta, start = [], 0
    for index, ep in enumerate(episodes):
        n = len(ep)
        if n == 0:
            raise ValueError(f"episode {index} is empty")
        steps = {
            "q": ep.q, "target": ep.target, "next_q": ep.next_q,
            "base_target": ep.target if ep.base_target is None else ep.base_target,
            "wrist": np.broadcast_to(ep.wrist, (n, 4)), "axis": np.broadcast_to(ep.axis, (n, 3)),
        }
        steps.update({name: getattr(ep, name) for name in optional})
        for name in (*PER_STEP, *optional):
            dtype, tail = layout[name]
            arr = np.asarray(steps[name], dtype=dtype)
            if arr.shape != (n, *tail):
                raise ValueError(f"episode {index}: {name} has shape {arr.shape}, expected {(n, *tail)}")
            columns[name].append(arr)
        columns["episode"].append(np.full(n, index, dtype=np.int32))
        columns["step"].append(np.arange(n, dtype=np.int32))
        columns["success"].append(np.full(n, bool(ep.success)))
        meta.append({"index": index, "start": start, "length": n, "success": bool(ep.success),
                     "source": ep.source, "wrist": ep.wrist_label, "object_set": ep.object_set})
        start += n
    for name, parts in columns.items():
        np.save(tmp / f"{name}.npy", np.concatenate(parts))
    index = {
        "layout_version": LAYOUT_VERSION,
        "joint_names": list(hand.JOINT_NAMES),
        "num_transitions": start,
        "episodes": meta,
        "arrays": {name: {"dtype": d, "shape": [start, *t]} for name, (d, t) in layout.items()},
        "provenance": {"created_unix": time.time(), **(provenance or {})},
    }
    (tmp / "index.json").write_text(json.dumps(index, indent=1))
    tmp.rename(path)
    return path


class Dataset:
    """A dataset directory opened read-only with memory-mapped arrays."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        index_file = self.path / "index.json"
        if not index_file.exists():
            raise FileNotFoundError(f"{index_file} not found: is {self.path} a dataset directory?")
        self.index = json.loads(index_file.read_text())
        if self.index.get("layout_version") != LAYOUT_VERSION:
            raise ValueError(f"{self.path}: layout version {self.index.get('layout_version')}, expected {LAYOUT_VERSION}")
        if self.index["joint_names"] != list(hand.JOINT_NAMES):
            raise ValueError(f"{self.path}: joint names differ from the joint table")
        names = [*ARRAYS, *(name for name in OPTIONAL if name in self.index.get("arrays", {}))]
        self.arrays = {name: np.load(self.path / f"{name}.npy", mmap_mode="r") for name in names}

    def __len__(self) -> int:
        return int(self.index["num_transitions"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def episodes(self) -> list[dict]:
        return self.index["episodes"]

    def episode_slice(self, episode: int) -> slice:
        meta = self.episodes[episode]
        return slice(meta["start"], meta["start"] + meta["length"])

    def split_episodes(self, eval_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(train, eval) episode indices: a seeded shuffle split by episode, never by row."""
        ids = np.random.default_rng(seed).permutation(len(self.episodes))
        n_eval = max(1, int(round(eval_fraction * len(ids)))) if len(ids) > 1 else 0
        return np.sort(ids[n_eval:]), np.sort(ids[:n_eval])
