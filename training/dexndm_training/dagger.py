"""DAgger from a privileged teacher to the proprioceptive generalist: `dexndm-train dagger`. The teacher is
the sampling MPC, or with `--teacher-run` a trained specialist (a PPO run, e.g. with a privileged actor, or a
searched gait), or per object set with `--teachers OBJECT=PATH ...`.

Plain BC of the teacher does not hold up: the student drifts into states the teacher never visited and
drops the object (8 episodes, cuboid: Rot 0.22 rad, TTF 0.51). DAgger trains on the student's own states:

    iteration i, for each object set:
        the student_i acts (the teacher instead with probability beta_i per tick), the teacher plans at
        every tick and its delta labels the state: one mpc round, a shard under out/<object>/shards/
    student_{i+1} = BC on every shard so far (plus the extra datasets, e.g. the teacher's own runs)
    evaluate student_{i+1} alone on fresh episodes of each object set: one point of out/curve.json

The run directory holds config.json, curve.json, TensorBoard scalars (tb/), student_NNNN.pt (student_0000
is the initial student) and bc_NNNN/ (each BC's report). Every step leaves a file behind, so a killed run
goes on where it stopped when the same command runs again: an object's round is done when its mpc run
has i + 1 rounds, BC when student_{i+1} exists, the evaluation when curve.json has the point.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from dexndm_training import mpc
from dexndm_training.bc import BCConfig, train_bc
from dexndm_training.env import EnvConfig


@dataclass
class DaggerConfig:
    """Settings of a DAgger run (the teacher's own settings are an MPCConfig beside it)."""

    objects: list[str] = field(default_factory=lambda: ["normal_cuboid", "normal_cylinder"])
    wrists: list[str] = field(default_factory=lambda: ["palm_up"])
    axes: list[str] = field(default_factory=lambda: ["z"])
    num_envs: int = 8  # worlds (episodes) per object set and iteration
    episode_steps: int = 400
    #: beta_i = max(beta_min, beta * beta_decay^i): how often the teacher still acts in iteration i
    beta: float = 0.5
    beta_decay: float = 0.7
    beta_min: float = 0.1
    datasets: list[str] = field(default_factory=list)  # more datasets for every BC (e.g. teacher shards)
    width: int = 128
    blocks: int = 2
    epochs: int = 20
    batch_size: int = 256
    eval_episodes: int = 8
    eval_seed: int = 77  # fresh episodes for the curve, the same every iteration
    seed: int = 500
    threads: int = 2
    #: a `dexndm-train ppo` run (e.g. a privileged specialist) whose actor labels instead of the MPC teacher;
    #: a new run may then start without a student (iteration 0: the teacher acts alone and labels itself)
    teacher_run: str = ""
    #: per object set, "OBJECT=PATH": that set's teacher (a ppo run or a gait.json) in place of teacher_run
    teachers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def teacher_by_object(self) -> dict[str, str]:
        """The network teacher of each object set ("" for the MPC planner): its `teachers` entry, else teacher_run."""
        named = {}
        for entry in self.teachers:
            name, sep, path = entry.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--teachers takes OBJECT=PATH entries, got {entry!r}")
            named[name] = path
        unknown = sorted(set(named) - set(self.objects))
        if unknown:
            raise ValueError(f"--teachers names {unknown}, not among --objects {self.objects}")
        return {obj: named.get(obj, self.teacher_run) for obj in self.objects}

    def beta_at(self, iteration: int) -> float:
        return max(self.beta_min, self.beta * self.beta_decay**iteration)


def student_path(out: Path, iteration: int) -> Path:
    return out / f"student_{iteration:04d}.pt"


def _shards(out: Path, cfg: DaggerConfig) -> list[str]:
    found = [str(p) for obj in cfg.objects for p in sorted((out / obj / "shards").glob("round_*")) if (p / "index.json").exists()]
    return [*cfg.datasets, *found]


def run(cfg: DaggerConfig, teacher: mpc.MPCConfig, out, iterations: int, initial_student=None,
        progress: bool = True) -> list[dict]:
    """Run `iterations` more DAgger iterations in `out` (resumable); returns the curve."""
    from dexndm_training import evaluate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    first = student_path(out, 0)
    teachers = cfg.teacher_by_object()
    for obj, path in teachers.items():
        if path and not Path(path).exists():
            raise FileNotFoundError(f"teacher {path} of {obj} not found: a dexndm-train ppo --run-dir or a gait.json")
    if not first.exists():
        if initial_student is None and not all(teachers.values()):
            raise ValueError("a new DAgger run needs --init-student (a generalist.pt from dexndm-train bc, e.g. on "
                             "the teacher's shards: dexndm-train bc --datasets runs/mpc/*/shards/*)")
        if initial_student is not None and not Path(initial_student).exists():
            raise FileNotFoundError(f"initial student {initial_student} not found")
    mpc.resume_config(out, {"dagger": cfg.to_dict(), "mpc": teacher.to_dict()},
                      {"dagger": DaggerConfig().to_dict(), "mpc": mpc.MPCConfig().to_dict()})
    if not first.exists() and initial_student is not None:
        shutil.copyfile(initial_student, first)
    curve_file = out / "curve.json"
    curve = json.loads(curve_file.read_text()) if curve_file.exists() else []
    start_iteration = len(curve)
    for i in range(start_iteration, start_iteration + iterations):
        started = time.time()
        student = student_path(out, i)
        if not student.exists():  # iteration 0 of a run with a network teacher and no initial student
            student = None
        beta = cfg.beta_at(i) if student is not None else 1.0
        for obj in cfg.objects:  # one labelled round per object set, student_i acting
            run_dir = out / obj
            done = len(json.loads((run_dir / "curve.json").read_text())) if (run_dir / "curve.json").exists() else 0
            if done > i:
                continue
            env_cfg = EnvConfig(num_envs=cfg.num_envs, object=obj, wrists=list(cfg.wrists), axes=list(cfg.axes),
                                episode_steps=cfg.episode_steps, seed=cfg.seed, threads=cfg.threads)
            mpc.collect(env_cfg, replace(teacher, seed=cfg.seed, threads=cfg.threads), run_dir, rounds=1,
                        progress=progress, student=student, beta=beta, teacher_run=teachers[obj])
        following = student_path(out, i + 1)
        if not following.exists():  # BC on everything so far
            bc_cfg = BCConfig(width=cfg.width, blocks=cfg.blocks, epochs=cfg.epochs, batch_size=cfg.batch_size,
                              datasets=_shards(out, cfg), only_successful=False, seed=cfg.seed + i, device="cpu")
            _, report = train_bc(bc_cfg, out / f"bc_{i + 1:04d}", progress=progress)
            tmp = following.with_suffix(".pt.tmp")
            shutil.copyfile(out / f"bc_{i + 1:04d}" / "generalist.pt", tmp)
            tmp.replace(following)
        report = json.loads((out / f"bc_{i + 1:04d}" / "bc_report.json").read_text())
        policy = mpc.load_student(following)
        point = {"iteration": i, "beta": beta, "student": following.name, "bc_eval_mse": report["best_eval_mse"],
                 "zero_action_mse": report["zero_action_eval_mse"], "train_rows": report["train_rows"]}
        steps = 0
        for obj in cfg.objects:
            teacher_curve = json.loads((out / obj / "curve.json").read_text())
            steps += teacher_curve[-1]["env_steps"]
            r = evaluate.evaluate_rotation(policy, object_set=obj, axis=cfg.axes[0], wrist=cfg.wrists[0],
                                           episodes=cfg.eval_episodes, seed=cfg.eval_seed,
                                           episode_steps=cfg.episode_steps, threads=cfg.threads)
            point[obj] = {k: r["policy"][k] for k in ("rot", "ttf", "rotp")}
            point[obj]["mix"] = {k: teacher_curve[i][k] for k in ("rot", "ttf", "rotp")}  # what the labelled round did
        previous = curve[-1] if curve else {"env_steps": 0, "wall_s": 0.0}
        point["env_steps"] = steps  # labelled teacher ticks so far, all objects
        point["wall_s"] = previous["wall_s"] + time.time() - started
        curve.append(point)
        tmp = curve_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(curve, indent=1))
        tmp.replace(curve_file)
        _tensorboard(out, point, cfg.objects)
        if progress:
            text = ", ".join(f"{o} rot {point[o]['rot']:.2f} ttf {point[o]['ttf']:.2f} rotp {point[o]['rotp']:.2f}" for o in cfg.objects)
            print(f"dagger iteration {i} (beta {beta:.2f}): student {following.name}: {text}", flush=True)
    return curve


def _tensorboard(out: Path, point: dict, objects: list[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(out / "tb")) as writer:
        for obj in objects:
            for key in ("rot", "ttf", "rotp"):
                writer.add_scalar(f"student/{obj}/{key}", point[obj][key], point["env_steps"])
        writer.add_scalar("student/bc_eval_mse", point["bc_eval_mse"], point["env_steps"])
        writer.add_scalar("student/beta", point["beta"], point["env_steps"])


# ---------------------------------------------------------------------------------------------------- CLI
def register(sub) -> None:
    """`dexndm-train dagger`: flags from DaggerConfig and, for the teacher, MPCConfig."""
    from dexndm_training.config_flags import add_flags

    p = sub.add_parser("dagger", help="DAgger: the student acts, the teacher (MPC, or --teacher-run) labels, BC, evaluate; resumes")
    p.add_argument("--out", required=True, help="run directory: config.json, curve.json, student_NNNN.pt, <object>/shards/")
    p.add_argument("--iterations", type=int, default=10, help="more iterations to run")
    p.add_argument("--init-student", default=None, help="generalist.pt to start from (a new run needs one)")
    add_flags(p, DaggerConfig)
    group = p.add_argument_group("teacher (MPCConfig)")
    add_flags(group, mpc.MPCConfig, skip=("seed", "threads"))
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    import torch

    from dexndm_training.config_flags import values

    torch.set_num_threads(1)
    cfg = DaggerConfig(**values(args, DaggerConfig))
    teacher = mpc.MPCConfig(**values(args, mpc.MPCConfig, skip=("seed", "threads")))
    curve = run(cfg, teacher, args.out, args.iterations, initial_student=args.init_student)
    if not curve:
        print(f"out={args.out} iterations=0")
        return 0
    last = curve[-1]
    parts = " ".join(f"{o}_rot_rad={last[o]['rot']:.3f} {o}_ttf={last[o]['ttf']:.3f} {o}_rotp={last[o]['rotp']:.3f}"
                     for o in cfg.objects)
    print(f"out={args.out} iterations={len(curve)} {parts} env_steps={last['env_steps']} wall_s={last['wall_s']:.0f}")
    return 0
