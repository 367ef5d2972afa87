"""`dexndm-train`: the training pipeline's command line (one function per subcommand).

    dexndm-train ppo        --object normal_cylinder --axes z --wrists palm_up --run-dir runs/ppo_cyl
    dexndm-train collect    --policy runs/ppo_cyl --episodes 200 --out runs/data/cyl
    dexndm-train bc         --datasets runs/data/cyl --out runs/bc
    dexndm-train export     --checkpoint runs/bc/generalist.pt --out src/dexndm_policy/models/generalist.onnx
    dexndm-train make-default-models --out DIR   (an untrained generalist + residual of the contract's shape)
    dexndm-train evaluate   --policy src/dexndm_policy/models/generalist.onnx --episodes 50
    dexndm-train evaluate-grid --policy ... --out runs/eval
    dexndm-train convert-bags BAGS... OUT   (robot bags -> transition dataset, see dexndm_training.bags)
    dexndm-train view-bag BAG               (a bag as a rerun recording, one timeline per episode)
    dexndm-train ndm-data | dynamics | dynamics-eval | dynamics-export | residual   (DexNDM, see ndm_cli)
    dexndm-train sysid      --out runs/sysid   (fit the source PD model to the target world, paper App. C)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dexndm_training import bags, config_flags, default_models, ndm_cli, view_bag

#: EnvConfig fields no subcommand sets from a flag: the reward has its own dataclass; the device follows --device.
ENV_SKIP = ("reward", "device")


def _env_args(p: argparse.ArgumentParser, skip: tuple[str, ...] = (), defaults: dict | None = None) -> None:
    """The rotation environment's flags, one per EnvConfig field, and --torch-threads."""
    from dexndm_training.env import ACTION_MODES, EnvConfig

    config_flags.add_flags(p, EnvConfig, skip=ENV_SKIP + skip, defaults=defaults,
                           choices={"action_mode": ACTION_MODES})
    p.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default: %(default)s)")


def _env_config(args):
    import torch

    from dexndm_training.env import EnvConfig

    torch.set_num_threads(max(1, args.torch_threads))
    return EnvConfig(**config_flags.values(args, EnvConfig, skip=ENV_SKIP), device=getattr(args, "device", "cpu"))


def _policy(spec: str, env=None):
    """A policy callable from 'zero', an .onnx file, a BC .pt file or a PPO run directory / checkpoint."""
    from dexndm_training import rollout

    path = Path(spec)
    if spec == "zero":
        return rollout.zero_policy
    if not path.exists():
        raise FileNotFoundError(f"policy {spec!r} not found: give 'zero', an .onnx file, a BC generalist.pt, a gait "
                                "(gait.json or its directory, dexndm-train gait), or a PPO run directory holding "
                                "model_*.pt checkpoints (dexndm-train ppo)")
    if path.suffix == ".onnx":
        return rollout.OnnxPolicy(path)
    from dexndm_training.gait import Gait, GaitPolicy, gait_file

    if gait_file(path) is not None:
        return GaitPolicy(Gait.load(gait_file(path)))
    if path.suffix == ".pt" and "model_" not in path.name:
        from dexndm_training.bc import load_generalist

        return rollout.TorchPolicy(load_generalist(path))
    if env is None:
        raise ValueError(f"{spec}: a PPO specialist needs an environment to load against")
    from dexndm_training.ppo import load_actor

    return load_actor(path, env)


def _add_ppo(sub) -> None:
    from dexndm_training.ppo import PPOConfig

    p = sub.add_parser("ppo", help="train (or resume) a PPO specialist")
    _env_args(p)
    p.add_argument("--specialist", help="use the object category's preset (all wrists + random, principal and "
                   "general axes): normal_cylinder, normal_cuboid, long_cuboid, small_cylinder, irregular")
    p.add_argument("--run-dir", required=True, help="checkpoints, TensorBoard logs and run_config.json go here")
    # --seed is the env's (EnvConfig.seed) and seeds PPO too
    config_flags.add_flags(p, PPOConfig, skip=("seed",), names={"num_steps_per_env": "--steps-per-env"})
    p.add_argument("--no-resume", action="store_true", help="start over in --run-dir instead of resuming")
    _reward_args(p)
    p.set_defaults(func=_cmd_ppo)


def _reward_args(p: argparse.ArgumentParser) -> None:
    """One --reward-<field> flag per RewardConfig field."""
    from dexndm_training.rewards import RewardConfig

    config_flags.add_flags(p, RewardConfig, names={f: "--reward-" + f.replace("_", "-")
                                                   for f in RewardConfig.__dataclass_fields__})


def _cmd_ppo(args) -> int:
    from dexndm_training import ppo

    if args.specialist:
        if args.specialist not in ppo.SPECIALISTS:
            raise ValueError(f"unknown specialist {args.specialist!r}; choose one of {', '.join(ppo.SPECIALISTS)}")
        preset = ppo.SPECIALISTS[args.specialist]
        args.object, args.wrists, args.axes = preset.object, list(preset.wrists), list(preset.axes)
    from dexndm_training.rewards import RewardConfig

    env_cfg = _env_config(args)
    env_cfg.reward = RewardConfig(**config_flags.values(args, RewardConfig))
    cfg = ppo.PPOConfig(**config_flags.values(args, ppo.PPOConfig, skip=("seed",)), seed=args.seed)
    ppo.train(env_cfg, cfg, args.run_dir, resume=not args.no_resume)
    return 0


def _add_gait(sub) -> None:
    from dexndm_training.gait import SearchConfig

    p = sub.add_parser("gait", help="search a periodic finger gait with CEM (the specialist prior); resumes")
    _env_args(p, skip=("num_envs",))  # the search sizes its worlds: population x worlds_per_candidate
    p.add_argument("--out", required=True, help="directory for gait.json, history.json and the CEM state")
    config_flags.add_flags(p, SearchConfig, skip=("env", "seed"))  # --seed is the env's and seeds the search
    p.add_argument("--init", help="start around this gait.json instead of zero motion")
    p.set_defaults(func=_cmd_gait)


def _cmd_gait(args) -> int:
    from dexndm_training import gait

    env_cfg = _env_config(args)
    cfg = gait.SearchConfig(**config_flags.values(args, gait.SearchConfig, skip=("env", "seed")), seed=args.seed,
                            env=env_cfg)
    init = gait.Gait.load(args.init) if args.init else None
    result = gait.search(cfg, args.out, init=init)
    final = result["final"] or {}
    print(f"gait={Path(args.out) / 'gait.json'} generations={result['generations']} "
          f"rot_rad={final.get('mean_rot', float('nan')):.3f} fell={final.get('mean_fell', float('nan')):.2f}")
    return 0


def _add_mpc(sub) -> None:
    from dexndm_training.mpc import MPCConfig

    p = sub.add_parser("mpc", help="the sampling-MPC teacher: collect its rotating episodes as shards; resumes")
    # 8 worlds, not EnvConfig's 16: each world plans `samples` candidate rollouts every tick
    _env_args(p, defaults={"num_envs": 8})
    p.add_argument("--out", required=True, help="run directory: config.json, curve.json, shards/round_NNNN/")
    p.add_argument("--rounds", type=int, default=10, help="more rounds to run (one episode per world each)")
    p.add_argument("--min-rot", type=float, default=2.0, help="rad an episode must turn to be kept")
    p.add_argument("--student", default=None,
                   help="DAgger: a student (.onnx or generalist.pt) acts, the teacher labels every state it visits")
    p.add_argument("--beta", type=float, default=0.0, help="DAgger: chance per tick that the teacher acts instead")
    config_flags.add_flags(p, MPCConfig, skip=("seed", "threads"))  # the env's --seed and --threads
    p.set_defaults(func=_cmd_mpc)


def _cmd_mpc(args) -> int:
    from dexndm_training import mpc

    env_cfg = _env_config(args)
    cfg = mpc.MPCConfig(**config_flags.values(args, mpc.MPCConfig, skip=("seed", "threads")), seed=args.seed,
                        threads=args.threads)
    s = mpc.collect(env_cfg, cfg, args.out, args.rounds, min_rot=args.min_rot, student=args.student, beta=args.beta)
    print(f"out={args.out} rounds={s['rounds']} episodes={s['episodes']} kept={s['kept']} rot_rad={s['rot']:.3f} "
          f"ttf={s['ttf']:.3f} rotp={s['rotp']:.3f} wall_s={s['wall_s']:.0f}")
    return 0


def _add_distill(sub) -> None:
    from dexndm_training.distill import DistillConfig
    from dexndm_training.mpc import MPCConfig
    from dexndm_training.ppo import PPOConfig

    p = sub.add_parser("distill-mpc", help="DAgger from the MPC teacher into a privileged PPO actor (a run dir that "
                       "ppo, evaluate and dagger --teacher-run read); resumes")
    _env_args(p, defaults={"num_envs": 8})
    p.add_argument("--out", required=True, help="PPO run directory: run_config.json, model_N.pt, curve.json, distill_N.npz")
    p.add_argument("--iterations", type=int, default=10, help="more iterations to run")
    config_flags.add_flags(p, DistillConfig)
    group = p.add_argument_group("the actor (PPOConfig)")
    config_flags.add_flags(group, PPOConfig, only=("actor_hidden", "critic_hidden", "init_std", "noise_correlation"))
    group = p.add_argument_group("teacher (MPCConfig)")
    config_flags.add_flags(group, MPCConfig, skip=("seed", "threads"))
    p.set_defaults(func=_cmd_distill)


def _cmd_distill(args) -> int:
    import torch

    from dexndm_training import distill, mpc, ppo

    torch.set_num_threads(1)
    env_cfg = _env_config(args)
    teacher = mpc.MPCConfig(**config_flags.values(args, mpc.MPCConfig, skip=("seed", "threads")), seed=args.seed,
                            threads=args.threads)
    actor = config_flags.values(args, ppo.PPOConfig, only=("actor_hidden", "critic_hidden", "init_std", "noise_correlation"))
    cfg = distill.DistillConfig(**config_flags.values(args, distill.DistillConfig))
    curve = distill.run(env_cfg, teacher, ppo.PPOConfig(**actor, seed=args.seed), cfg, args.out, args.iterations)
    last = curve[-1] if curve else {}
    print(f"out={args.out} iterations={len(curve)} rot_rad={last.get('rot', float('nan')):.3f} "
          f"ttf={last.get('ttf', float('nan')):.3f} rotp={last.get('rotp', float('nan')):.3f} "
          f"eval_mse={last.get('eval_mse', float('nan')):.4f} zero_mse={last.get('zero_mse', float('nan')):.4f}")
    return 0


def _add_curve(sub) -> None:
    p = sub.add_parser("curve", help="plot learning curves (Rot, TTF vs env steps and wall time) of runs: JSON + PNG")
    p.add_argument("runs", nargs="+", help="run directories holding curve.json (dexndm-train mpc)")
    p.add_argument("--out", required=True, help="directory for curves.json and curves.png")
    p.set_defaults(func=_cmd_curve)


def _cmd_curve(args) -> int:
    from dexndm_training import curves

    runs = {name: points for r in args.runs for name, points in curves.series(r).items()}
    paths = curves.write(runs, args.out)
    last = {name: points[-1] for name, points in runs.items() if points}
    print(" ".join(f"{name}_rot_rad={p['rot']:.3f} {name}_ttf={p['ttf']:.3f} {name}_env_steps={p['env_steps']}"
                   for name, p in last.items()) + f" plot={paths['plot']}")
    return 0


GRASP_FLAGS = ("num_envs", "grasp_candidates", "seed", "threads")  # the EnvConfig fields the grasp cache reads


def _add_grasps(sub) -> None:
    from dexndm_training import evaluate
    from dexndm_training.env import EnvConfig

    p = sub.add_parser("grasps", help="success rate of the grasp cache per object set and wrist (a table, JSON)")
    p.add_argument("--objects", nargs="+", default=list(evaluate.TRAIN_OBJECTS + evaluate.TEST_OBJECTS))
    p.add_argument("--wrists", nargs="+", default=list(evaluate.WRISTS))
    config_flags.add_flags(p, EnvConfig, only=GRASP_FLAGS, names={"grasp_candidates": "--candidates"})
    p.add_argument("--json", help="write the rows here")
    p.set_defaults(func=_cmd_grasps)


def _cmd_grasps(args) -> int:
    from tqdm import tqdm

    from dexndm_training import grasps
    from dexndm_training.env import EnvConfig

    cfg = EnvConfig(**config_flags.values(args, EnvConfig, only=GRASP_FLAGS))
    cells = [(o, w) for o in args.objects for w in args.wrists]
    rows = [grasps.cache_success(o, w, cfg) for o, w in tqdm(cells, desc="grasp cache", unit="cell")]
    print(grasps.table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    mean = sum(r["success_rate"] for r in rows) / len(rows)
    low = min(rows, key=lambda r: r["success_rate"])
    print(f"cells={len(rows)} mean_success_rate={mean:.3f} min_success_rate={low['success_rate']:.3f} "
          f"min_cell={low['object']}/{low['wrist']}")
    return 0


def _add_collect(sub) -> None:
    p = sub.add_parser("collect", help="keep a policy's episodes that survive all steps, as a dataset")
    _env_args(p)
    p.add_argument("--policy", required=True, help="PPO run directory or checkpoint, .onnx, BC .pt")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--out", required=True, help="new dataset directory")
    p.add_argument("--max-rounds", type=int, default=100)
    p.set_defaults(func=_cmd_collect)


def _cmd_collect(args) -> int:
    from dexndm_training.env import RotationEnv
    from dexndm_training.rollout import collect

    env = RotationEnv(_env_config(args))
    path, stats = collect(env, _policy(args.policy, env), args.episodes, args.out, source=str(args.policy),
                          max_rounds=args.max_rounds)
    env.close()
    print(f"dataset={path} kept={stats['kept']} tried={stats['tried']} success_rate={stats['success_rate']:.3f}")
    return 0


def _add_bc(sub) -> None:
    from dexndm_training.bc import BCConfig

    p = sub.add_parser("bc", help="behaviour-clone the generalist from datasets (torchrun for several GPUs)")
    p.add_argument("--out", required=True, help="directory for generalist.pt and the BC report")
    config_flags.add_flags(p, BCConfig, required=("datasets",))
    p.set_defaults(func=_cmd_bc)


def _cmd_bc(args) -> int:
    from dexndm_training import bc

    cfg = bc.BCConfig(**config_flags.values(args, bc.BCConfig))
    _, report = bc.train_bc(cfg, args.out)
    print(f"bc_eval_mse={report['best_eval_mse']:.5f} zero_action_mse={report['zero_action_eval_mse']:.5f} "
          f"train_rows={report['train_rows']} seconds={report['seconds']:.1f}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a BC generalist to ONNX (with a parity check)")
    p.add_argument("--checkpoint", required=True, help="generalist.pt written by `bc`")
    p.add_argument("--out", required=True, help="generalist.onnx; its training config goes beside it (generalist.json)")
    p.add_argument("--config", nargs="*", default=[], help="extra JSON files merged into the training config")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    import torch

    from dexndm_policy import contract
    from dexndm_training import export
    from dexndm_training.bc import load_generalist

    model = load_generalist(args.checkpoint)
    saved = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    bc_cfg = saved["config"]
    config = {"network": "GeneralistPolicy", "width": bc_cfg["width"], "blocks": bc_cfg["blocks"], "trained": True,
              "made_by": "dexndm-train export", "bc": bc_cfg}
    for extra in args.config:
        config[Path(extra).stem] = json.loads(Path(extra).read_text())
    out = Path(args.out)
    error = export.export_policy(model, contract.KIND_GENERALIST, out, config, ",".join(bc_cfg["datasets"]))
    config["parity_error"] = error
    out.with_suffix(".json").write_text(json.dumps(config, indent=1))
    print(f"onnx={out} parity_max_abs_error={error:.2e} size_bytes={out.stat().st_size}")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="Rot and TTF of a policy vs the zero-action baseline, one condition")
    p.add_argument("--policy", required=True, help=".onnx, BC .pt, PPO run dir/checkpoint, or 'zero'")
    p.add_argument("--object", default="normal_cylinder")
    p.add_argument("--axis", default="z")
    p.add_argument("--wrist", default="palm_up")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--episode-steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the full result here")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    import torch

    from dexndm_training import evaluate
    from dexndm_training.env import EnvConfig, RotationEnv

    torch.set_num_threads(1)
    env = None
    if Path(args.policy).is_dir() or Path(args.policy).name.startswith("model_"):
        env = RotationEnv(EnvConfig(num_envs=args.episodes, object=args.object, wrists=[args.wrist], axes=[args.axis],
                                    episode_steps=args.episode_steps, seed=args.seed, threads=args.threads))
    result = evaluate.evaluate_rotation(_policy(args.policy, env), args.object, args.axis, args.wrist, args.episodes,
                                        args.seed, args.episode_steps, args.threads)
    result["policy_spec"] = args.policy
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    p, b = result["policy"], result["baseline"]
    print(f"policy: rot {p['rot']:.3f} rad, ttf {p['ttf']:.3f}, rotp {p['rotp']:.3f} rad/s, go {p['go_success']:.2f}; "
          f"zero action: rot {b['rot']:.3f} rad, ttf {b['ttf']:.3f} ({result['seconds']:.0f} s)")
    print(result["line"])
    return 0


def _add_evaluate_grid(sub) -> None:
    from dexndm_training import evaluate

    p = sub.add_parser("evaluate-grid", help="the paper's metrics per object, wrist and axis set: table, JSON, plot")
    p.add_argument("--policy", required=True, help=".onnx, BC .pt or 'zero'")
    p.add_argument("--out", required=True, help="directory for evaluation.{json,md,png}")
    p.add_argument("--objects", nargs="+", default=list(evaluate.TRAIN_OBJECTS + evaluate.TEST_OBJECTS))
    p.add_argument("--wrists", nargs="+", default=list(evaluate.WRISTS))
    p.add_argument("--axis-sets", nargs="+", default=list(evaluate.AXIS_SETS))
    p.add_argument("--episodes", type=int, default=8, help="per (object, wrist, axis set) cell")
    p.add_argument("--episode-steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=_cmd_evaluate_grid)


def _cmd_evaluate_grid(args) -> int:
    import numpy as np
    import torch

    from dexndm_training import evaluate

    torch.set_num_threads(1)
    rows = evaluate.evaluate_grid(_policy(args.policy), args.objects, args.wrists, args.axis_sets, args.episodes,
                                  args.episode_steps, args.seed, args.threads)
    paths = evaluate.write_report(rows, args.out, {"policy": args.policy, "episodes_per_cell": args.episodes,
                                                   "episode_steps": args.episode_steps, "seed": args.seed})
    print(evaluate.table(rows))
    mean = lambda who, m: float(np.mean([r[who][m] for r in rows]))  # noqa: E731
    print(f"json={paths['json']} plot={paths['plot']}")
    print(f"rot_rad={mean('policy', 'rot'):.3f} ttf={mean('policy', 'ttf'):.3f} "
          f"baseline_rot_rad={mean('baseline', 'rot'):.3f} baseline_ttf={mean('baseline', 'ttf'):.3f} "
          f"cells={len(rows)} episodes={len(rows) * args.episodes}")
    return 0


def _add_sysid(sub) -> None:
    from dexndm_training.sysid import SysIdConfig

    p = sub.add_parser("sysid", help="identify per-joint Kp, Kd and link masses of the source world's PD model "
                       "against the target world's free-hand probe trajectories (CEM, resumable)")
    p.add_argument("--out", required=True, help="directory for sysid.json, the recorded probe and the search state")
    p.add_argument("--reference", default="target", choices=("target", "source"),
                   help="world whose joint trajectories are matched")
    config_flags.add_flags(p, SysIdConfig, skip=("probe",))
    p.add_argument("--threads", type=int, default=2, help="physics threads (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="discard a previous search in --out instead of resuming it")
    p.set_defaults(func=_cmd_sysid)


def _cmd_sysid(args) -> int:
    from dexndm_training import sysid

    cfg = sysid.SysIdConfig(**config_flags.values(args, sysid.SysIdConfig, skip=("probe",)))
    result = sysid.identify(args.out, reference=args.reference, cfg=cfg, threads=args.threads, fresh=args.fresh)
    print(sysid.table(result))
    if result["reference_self_contact_ticks"]:
        print(f"note: fingers touched in {result['reference_self_contact_ticks']} probe ticks of the reference run; "
              "the per-finger search assumes they do not", file=sys.stderr)
    print(f"json={Path(args.out) / sysid.RESULT_FILE}")
    print(f"err_before_rad={result['err_before_rad']:.6f} err_after_rad={result['err_after_rad']:.6f} "
          f"ratio={result['err_after_rad'] / result['err_before_rad']:.3f} candidates={result['candidates']} "
          f"probe_ticks={result['probe_ticks']} search_seconds={result['search_seconds']:.1f} "
          f"seconds={result['seconds']:.1f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dexndm-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_ppo, _add_gait, _add_mpc, _add_distill, _add_curve, _add_grasps, _add_collect, _add_bc, _add_export, _add_evaluate,
                _add_evaluate_grid, _add_sysid):
        add(sub)
    ndm_cli.register(sub)
    default_models.register(sub)
    from dexndm_training import dagger

    dagger.register(sub)
    for action in sub.choices.values():
        action.set_defaults(clean_errors=True)  # these print a one-line error and exit 2
    bags.register(sub)
    view_bag.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if not getattr(args, "clean_errors", False):
        return args.func(args)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        print(f"dexndm-train {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
