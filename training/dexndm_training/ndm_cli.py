"""DexNDM subcommands of `dexndm-train` (data, dynamics model, residual); each ends with one key=value line.

    dexndm-train ndm-data rollouts --policy generalist.onnx --world source --wrists thumb_up --out runs/ndm/roll
    dexndm-train ndm-data replay --source sim_rollouts --source-path runs/ndm/roll --scene chaos_box --wrist thumb_up --out D
    dexndm-train ndm-data suite --policy generalist.onnx --wrists thumb_up base_up --out runs/ndm/data
    dexndm-train dynamics --datasets SOURCE... --out runs/ndm/dyn_src
    dexndm-train dynamics --datasets TARGET... --init runs/ndm/dyn_src/dynamics.pt --out runs/ndm/dyn --export dynamics.onnx
    dexndm-train dynamics-eval --model runs/ndm/dyn --datasets OOD...
    dexndm-train residual --datasets SOURCE_ROLLOUTS --dynamics runs/ndm/dyn --out runs/ndm/res --export residual.onnx
    dexndm-train bench-dynamics [--batch-size 32] [--hidden 32 32] [--repeats 5]
    dexndm-train sim2sim [--quick] [--run-dir runs/sim2sim] [--docs-dir docs/sim2sim] [--set name=value ...]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from dexndm_training import config_flags

REPLAY_SCENES = ("chaos_box", "hand_only")


def _threads(args) -> None:
    import torch

    torch.set_num_threads(max(1, args.torch_threads))


def _policy(spec: str):
    from dexndm_training.cli import _policy as make_policy

    return make_policy(spec)


# ---------------------------------------------------------------------------------------- ndm-data
def _add_data(sub) -> None:
    from dexndm_training.ndm_data import WORLDS, ReplayConfig, RolloutConfig, SuiteConfig

    p = sub.add_parser("ndm-data", help="DexNDM transition datasets from the batched simulator")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    r = kinds.add_parser("rollouts", help="the base policy closed-loop in the rotation env (source or target world)")
    r.add_argument("--policy", required=True, help="base policy: .onnx, BC .pt, gait.json or 'zero'")
    config_flags.add_flags(r, RolloutConfig, choices={"world": WORLDS})
    r.add_argument("--out", required=True, help="new dataset directory")
    r.set_defaults(func=_cmd_rollouts)
    s = kinds.add_parser("replay", help="open-loop replay (Chaos Box, free hand, base waves) in the target world")
    config_flags.add_flags(s, ReplayConfig, choices={"world": WORLDS, "scene": REPLAY_SCENES})
    s.add_argument("--out", required=True, help="new dataset directory")
    s.set_defaults(func=_cmd_replay)
    u = kinds.add_parser("suite", help="every DexNDM set for some wrists (rollouts, Chaos Box, free hand, waves, OOD)")
    u.add_argument("--policy", required=True)
    config_flags.add_flags(u, SuiteConfig)
    u.add_argument("--out", required=True, help="directory of the sets (existing sets are kept)")
    u.set_defaults(func=_cmd_suite)


def _line(path, stats: dict) -> str:
    extra = f" success_rate={stats['success_rate']:.3f}" if "success_rate" in stats else ""
    return (f"dataset={path} episodes={stats['episodes']} transitions={stats['transitions']}{extra} "
            f"seconds={stats['seconds']:.1f}")


def _cmd_rollouts(args) -> int:
    from dexndm_training import ndm_data

    _threads(argparse.Namespace(torch_threads=1))
    cfg = ndm_data.RolloutConfig(**config_flags.values(args, ndm_data.RolloutConfig))
    path, stats = ndm_data.policy_rollouts(cfg, _policy(args.policy), args.out, policy_name=str(args.policy))
    print(_line(path, stats))
    return 0


def _cmd_replay(args) -> int:
    from dexndm_training import ndm_data

    cfg = ndm_data.ReplayConfig(**config_flags.values(args, ndm_data.ReplayConfig))
    path, stats = ndm_data.replay_dataset(cfg, args.out)
    print(_line(path, stats))
    return 0


def _cmd_suite(args) -> int:
    from dexndm_training import ndm_data

    _threads(argparse.Namespace(torch_threads=1))
    cfg = ndm_data.SuiteConfig(**config_flags.values(args, ndm_data.SuiteConfig))
    result = ndm_data.generate_suite(cfg, args.out, _policy(args.policy), policy_name=str(args.policy))
    for name, stats in result.items():
        print(f"{name}: {stats}")
    made = [s for s in result.values() if "transitions" in s]
    print(f"suite={args.out} sets={len(result)} new_sets={len(made)} "
          f"transitions={sum(s['transitions'] for s in made)} seconds={sum(s['seconds'] for s in made):.1f}")
    return 0


# ---------------------------------------------------------------------------------------- dynamics
#: DynamicsConfig.role is set by fine-tuning itself, not from the command line.
DYNAMICS_SKIP = ("role",)


def _add_dynamics(sub) -> None:
    from dexndm_training.dynamics import GROUPINGS, DynamicsConfig

    p = sub.add_parser("dynamics", help="train (or fine-tune with --init) the joint-wise dynamics model; resumes")
    p.add_argument("--out", required=True, help="directory for dynamics.pt, checkpoint.pt, dynamics_report.json")
    config_flags.add_flags(p, DynamicsConfig, skip=DYNAMICS_SKIP, required=("datasets",),
                           choices={"grouping": GROUPINGS})
    p.add_argument("--eval-datasets", nargs="*", default=[], help="also report the error on these (e.g. OOD) sets")
    p.add_argument("--export", default="", help="write dynamics.onnx here (parity-checked)")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--no-resume", action="store_true")
    p.set_defaults(func=_cmd_dynamics)
    e = sub.add_parser("dynamics-eval", help="one-step prediction error of a dynamics model on datasets")
    e.add_argument("--model", required=True, help="dynamics.pt or its directory")
    e.add_argument("--datasets", nargs="+", required=True)
    e.add_argument("--split", default="all", choices=["all", "train", "eval"],
                   help="all rows, or the episodes of training's 9:1 split (same --seed)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--wrists", nargs="*", default=[], help="only episodes of these wrist labels (default all)")
    e.add_argument("--torch-threads", type=int, default=1)
    e.set_defaults(func=_cmd_dynamics_eval)
    x = sub.add_parser("dynamics-export", help="dynamics.pt -> dynamics.onnx (parity-checked, with metadata)")
    x.add_argument("--model", required=True)
    x.add_argument("--out", required=True)
    x.set_defaults(func=_cmd_dynamics_export)


def _cmd_dynamics(args) -> int:
    from dexndm_training import dynamics

    _threads(args)
    if args.init:  # fine-tuning keeps the model's shape
        model, _ = dynamics.load_dynamics(args.init)
        args.hidden, args.window, args.grouping = list(model.hidden), model.window, model.grouping
    cfg = dynamics.DynamicsConfig(**config_flags.values(args, dynamics.DynamicsConfig, skip=DYNAMICS_SKIP))
    model, report = dynamics.train_dynamics(cfg, args.out, resume=not args.no_resume)
    line = (f"model={Path(args.out) / dynamics.MODEL_FILE} eval_mae_rad={report['eval']['mae']:.6f} "
            f"eval_rmse_rad={report['eval']['rmse']:.6f} zero_delta_mae_rad={report['eval']['zero_delta_mae']:.6f} "
            f"initial_eval_mae_rad={report['initial_eval']['mae']:.6f} best_epoch={report['best_epoch']} "
            f"train_rows={report['train_rows']} eval_rows={report['eval_rows']} seconds={report['seconds']:.1f} "
            f"train_samples_per_s={report['train_samples_per_s']:.0f}")
    if args.eval_datasets:
        extra = dynamics.evaluate_dynamics(model, list(args.eval_datasets))
        line += f" extra_mae_rad={extra['mae']:.6f} extra_zero_delta_mae_rad={extra['zero_delta_mae']:.6f}"
    if args.export:
        _, record = dynamics.load_dynamics(Path(args.out) / dynamics.MODEL_FILE)
        error = dynamics.export_dynamics(model, record, args.export)
        line += f" onnx={args.export} parity_max_abs_error={error:.2e}"
    print(line)
    return 0


def _cmd_dynamics_eval(args) -> int:
    from dexndm_training import dynamics

    _threads(args)
    model, _ = dynamics.load_dynamics(args.model)
    errors = dynamics.evaluate_dynamics(model, list(args.datasets), split=args.split, seed=args.seed,
                                        wrists=tuple(args.wrists))
    print(f"mae_rad={errors['mae']:.6f} rmse_rad={errors['rmse']:.6f} zero_delta_mae_rad={errors['zero_delta_mae']:.6f} "
          f"rows={errors['rows']}")
    return 0


def _cmd_dynamics_export(args) -> int:
    from dexndm_training import dynamics

    model, record = dynamics.load_dynamics(args.model)
    error = dynamics.export_dynamics(model, record, args.out)
    print(f"onnx={args.out} parity_max_abs_error={error:.2e} size_bytes={Path(args.out).stat().st_size}")
    return 0


# ---------------------------------------------------------------------------------------- residual
def _add_residual(sub) -> None:
    from dexndm_training.residual import ResidualConfig

    p = sub.add_parser("residual", help="train the residual policy through a frozen dynamics model")
    p.add_argument("--out", required=True, help="directory for residual.pt and residual_report.json")
    config_flags.add_flags(p, ResidualConfig, required=("datasets", "dynamics"))
    p.add_argument("--export", default="", help="write residual.onnx here (parity-checked, config JSON beside it)")
    p.add_argument("--torch-threads", type=int, default=1)
    p.set_defaults(func=_cmd_residual)


def _cmd_residual(args) -> int:
    from dexndm_training import residual

    _threads(args)
    cfg = residual.ResidualConfig(**config_flags.values(args, residual.ResidualConfig))
    policy, report = residual.train_residual(cfg, args.out)
    line = (f"model={Path(args.out) / residual.MODEL_FILE} eval_mismatch_mae_rad={report['eval']['mae']:.6f} "
            f"zero_residual_mae_rad={report['zero_residual_eval']['mae']:.6f} "
            f"mean_abs_residual_rad={report['eval']['mean_abs_residual']:.6f} best_epoch={report['best_epoch']} "
            f"train_rows={report['train_rows']} seconds={report['seconds']:.1f}")
    if args.export:
        _, record = residual.load_residual(Path(args.out) / residual.MODEL_FILE)
        error, _ = residual.export_residual(policy, record, args.export)
        line += f" onnx={args.export} parity_max_abs_error={error:.2e}"
    print(line)
    return 0


# ---------------------------------------------------------------------------------------- tracking
def _add_tracking(sub) -> None:
    from dexndm_training.tracking import TrackingConfig

    p = sub.add_parser("tracking", help="joint tracking error, target vs source world, without and with a residual")
    p.add_argument("--policy", default="src/dexndm_policy/models/generalist.onnx", help="base policy")
    p.add_argument("--residual", default="none", help="residual.onnx, residual.pt (or its directory), or none")
    config_flags.add_flags(p, TrackingConfig)
    p.add_argument("--json", default="", help="write the full result here")
    p.set_defaults(func=_cmd_tracking)


def _residual_callable(spec: str):
    if spec in ("", "none"):
        return None
    if spec.endswith(".onnx"):
        from dexndm_policy import contract, runtime

        return runtime.OnnxPolicyModel(spec, contract.KIND_RESIDUAL)
    from dexndm_training import residual

    return residual.residual_fn(residual.load_residual(spec)[0])


def _cmd_tracking(args) -> int:
    import json

    from dexndm_training import tracking

    _threads(argparse.Namespace(torch_threads=1))
    cfg = tracking.TrackingConfig(**config_flags.values(args, tracking.TrackingConfig))
    result = tracking.tracking_error(_policy(args.policy), cfg, _residual_callable(args.residual))
    result.update(policy=args.policy, residual_model=args.residual)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    line = f"direct_track_err_rad={result['direct']['track_err']:.5f}"
    if "residual" in result:
        r = result["residual"]
        line += (f" residual_track_err_rad={r['track_err']:.5f} ratio={r['track_err'] / result['direct']['track_err']:.3f}"
                 f" mean_abs_residual_rad={r['mean_abs_residual']:.5f}")
    if "rot" in result["direct"]:
        line += f" source_rot_rad={result['source']['rot']:.3f} direct_rot_rad={result['direct']['rot']:.3f}"
        line += f" direct_ttf={result['direct']['ttf']:.3f}"
        if "residual" in result:
            line += f" residual_rot_rad={result['residual']['rot']:.3f} residual_ttf={result['residual']['ttf']:.3f}"
    print(f"{line} episodes={args.episodes} seconds={result['seconds']:.1f}")
    return 0


# ---------------------------------------------------------------------------------------- bench-dynamics
def _add_bench(sub) -> None:
    from dexndm_training.dynamics_bench import BenchConfig

    p = sub.add_parser("bench-dynamics", help="training throughput: grouped weights vs a per-joint Python loop")
    config_flags.add_flags(p, BenchConfig)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--json", default="", help="write the figures and both loss curves here")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    import json

    from dexndm_training.dynamics_bench import BenchConfig, run_bench

    _threads(args)
    cfg = BenchConfig(**config_flags.values(args, BenchConfig))
    result = run_bench(cfg)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"batch_size={cfg.batch_size} hidden={'x'.join(map(str, cfg.hidden))} steps={cfg.steps} "
          f"repeats={cfg.repeats} max_loss_difference={result['max_loss_difference']:.2e} "
          f"fused_loop_samples_per_s={result['fused_loop_samples_per_s']:.0f} "
          f"speedup_vs_fused_loop={result['speedup_vs_fused_loop']:.2f}")
    print(f"batched_samples_per_s={result['batched_samples_per_s']:.0f} "
          f"loop_samples_per_s={result['loop_samples_per_s']:.0f} speedup={result['speedup']:.2f}")
    return 0


# ---------------------------------------------------------------------------------------- sim2sim
def _add_sim2sim(sub) -> None:
    p = sub.add_parser("sim2sim", help="the sim-to-sim study: DexNDM vs direct transfer and the baselines (resumable)")
    p.add_argument("--quick", action="store_true", help="the small configuration (about 20 min on 2 cores)")
    p.add_argument("--policy", default="", help="base policy .onnx (default: the shipped generalist)")
    p.add_argument("--run-dir", default="", help="cached data, models and evaluations (default runs/sim2sim[_quick])")
    p.add_argument("--docs-dir", default="docs/sim2sim", help="where the table, JSON and plots go")
    p.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                   help="override StudyConfig fields, e.g. eval_episodes=16 chaos_episodes=4,16,64")
    p.add_argument("--fresh", action="store_true", help="delete the run directory's cached results first")
    p.add_argument("--torch-threads", type=int, default=1)
    p.set_defaults(func=_cmd_sim2sim)


def _cmd_sim2sim(args) -> int:
    import shutil

    from dexndm_training import sim2sim

    _threads(args)
    cfg = sim2sim.QUICK if args.quick else sim2sim.StudyConfig()
    if args.policy:
        cfg = sim2sim.replace(cfg, policy=args.policy)
    cfg = sim2sim.override(cfg, list(args.set))
    run_dir = Path(args.run_dir or ("runs/sim2sim_quick" if args.quick else "runs/sim2sim"))
    if args.fresh and run_dir.exists():
        if not (run_dir / "study_config.json").exists():
            raise ValueError(f"--fresh: {run_dir} is not a study run directory (no study_config.json); not deleting it")
        shutil.rmtree(run_dir)
    start = time.time()
    report = sim2sim.Study(cfg, run_dir).run(args.docs_dir)
    print((Path(args.docs_dir) / "sim2sim.md").read_text())
    print(f"run_dir={run_dir} docs={args.docs_dir} seconds={time.time() - start:.1f}")
    print(sim2sim.last_line(report["summary"]))
    return 0


def register(sub) -> None:
    """Add the DexNDM subcommands to the dexndm-train command line."""
    for add in (_add_data, _add_dynamics, _add_residual, _add_tracking, _add_bench, _add_sim2sim):
        add(sub)
