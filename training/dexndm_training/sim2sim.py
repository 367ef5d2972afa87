"""The sim-to-sim study of DexNDM: the target world stands in for the real hand (`dexndm-train sim2sim`).

Stages, each cached under the run directory so a stopped study resumes where it was (a dataset, model or
evaluation on disk is reused; dynamics training resumes from its last epoch):

1. data     base-policy rollouts in the source world (pretraining, the residual's data, replay sequences),
            the Chaos Box per data wrist (with and without the replay noise), free-hand replay, base waves in
            the target world and the same waves in the source world, the OOD set (the base policy rotating
            the object in the target world, `ood_wrist`);
2. sysid    the identified PD table of the source world against the target world (sysid.identify);
3. models   dynamics models: pretrained on the source world (joint, finger, hand), fine-tuned on n Chaos Box
            episodes (the data-scaling points; joint, hand, joint from scratch), the grouping, load, noise and
            data-source ablations, the UAN-style shared actuator net;
4. methods  the DexNDM residual (through the joint-wise model), whole-hand model + residual, the UAN-style
            compensator, the ASAP-style delta-action model (baselines.py);
5. eval     per eval wrist and axis set, the base policy in the source world and in the target world under
            every method from the same starts (tracking.compare_methods): Rot, TTF, RotR, RotP, tracking error;
            the models' one-step error on the OOD set;
6. report   a Markdown table, JSON and plots in `docs_dir`.

The last line is `direct_rot_rad=... dexndm_rot_rad=... direct_ttf=... dexndm_ttf=... direct_track_err=...
dexndm_track_err=... jointwise_ood_err=... wholehand_ood_err=...` (means over the eval conditions; the OOD
errors of the joint-wise and whole-hand models at the smallest data-scaling point).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

METHODS = ("direct", "dexndm", "sysid", "wholehand", "uan", "asap")
METHOD_NAMES = {"direct": "direct transfer", "dexndm": "DexNDM (joint-wise model + residual)",
                "sysid": "sysid (identified PD, torque matching)", "wholehand": "whole-hand model + residual",
                "uan": "UAN-style compensator", "asap": "ASAP-style delta action"}


@dataclass
class StudyConfig:
    """Every setting of the study (`--quick` and the full mode are two instances; `--set name=value` overrides)."""

    policy: str = "src/dexndm_policy/models/generalist.onnx"
    object: str = "normal_cylinder"
    rollout_wrists: list[str] = field(default_factory=lambda: ["thumb_up", "palm_up"])
    data_wrists: list[str] = field(default_factory=lambda: ["thumb_up"])  # Chaos Box, free hand, waves
    ood_wrist: str = "thumb_up"
    eval_wrists: list[str] = field(default_factory=lambda: ["palm_up", "thumb_up"])
    axis_sets: list[str] = field(default_factory=lambda: ["z", "principal"])
    steps: int = 400  # per episode, everywhere
    rollout_episodes: int = 128  # per rollout wrist
    ood_episodes: int = 64
    chaos_episodes: list[int] = field(default_factory=lambda: [50, 200, 1000, 4000])  # the data-scaling points
    noiseless_episodes: int = 200  # Chaos Box without replay noise (compared at this many episodes)
    free_hand_episodes: int = 200
    wave_episodes: int = 64  # per wave kind
    eval_episodes: int = 64  # per eval wrist and axis set
    num_envs: int = 64
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    dyn_epochs: int = 30
    dyn_batch_size: int = 2048
    dyn_max_batches: int = 0
    residual_width: int = 96
    residual_epochs: int = 20
    residual_batch_size: int = 512
    residual_max_batches: int = 0
    sysid_population: int = 64
    sysid_iterations: int = 20
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


QUICK = StudyConfig(rollout_episodes=16, ood_episodes=16, chaos_episodes=[2, 4, 8, 16], noiseless_episodes=8,
                    free_hand_episodes=16, wave_episodes=6, eval_episodes=8, num_envs=16, hidden=[64, 64],
                    dyn_epochs=10, dyn_batch_size=512, dyn_max_batches=15, residual_epochs=8,
                    residual_batch_size=256, residual_max_batches=15, sysid_population=32, sysid_iterations=8)


def override(cfg: StudyConfig, assignments: list[str]) -> StudyConfig:
    """cfg with `name=value` assignments (lists comma-separated), typed by the field's default."""
    kinds = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    changes = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or name not in kinds:
            raise ValueError(f"--set {item!r}: expected name=value with name one of {', '.join(kinds)}")
        default = kinds[name]
        if isinstance(default, list):
            cast = type(default[0]) if default else str
            changes[name] = [cast(v) for v in value.split(",") if v]
        else:
            changes[name] = type(default)(value)
    return replace(cfg, **changes)


# ---------------------------------------------------------------------------------------- the plan
class Study:
    """Paths and stages of one study run in `run_dir`."""

    def __init__(self, cfg: StudyConfig, run_dir: str | os.PathLike, progress: bool = True):
        if not cfg.chaos_episodes or min(cfg.chaos_episodes) < 1:
            raise ValueError("chaos_episodes must list data-scaling points >= 1 episode")
        if cfg.noiseless_episodes > max(cfg.chaos_episodes):
            raise ValueError("noiseless_episodes must not exceed the largest chaos_episodes point")
        if not Path(cfg.policy).is_file():
            raise FileNotFoundError(f"base policy {cfg.policy} not found; pass --policy PATH.onnx")
        self.cfg, self.root, self.progress = cfg, Path(run_dir), progress
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = self.root / "study_config.json"
        if stamp.exists():
            if json.loads(stamp.read_text()) != cfg.to_dict():
                raise ValueError(f"{self.root} holds a study with other settings ({stamp}); use another --run-dir "
                                 "or --fresh")
        else:
            stamp.write_text(json.dumps(cfg.to_dict(), indent=1))
        self.data, self.models = self.root / "data", self.root / "models"
        self.n_max, self.n_min = max(cfg.chaos_episodes), min(cfg.chaos_episodes)

    def bar(self, total: int, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=f"sim2sim {desc}", unit="item", disable=not self.progress, position=0)

    def policy(self):
        from dexndm_training.rollout import OnnxPolicy

        return OnnxPolicy(self.cfg.policy)

    # ------------------------------------------------------------------------------ 1. data
    def datasets(self) -> dict[str, tuple[Path, callable]]:
        """name -> (dataset directory, function writing it)."""
        from dexndm_training import ndm_data

        c = self.cfg
        sets = {}
        roll = dict(object=c.object, episode_steps=c.steps, num_envs=c.num_envs, seed=c.seed, threads=c.threads)
        sets["source_rollouts"] = lambda out: ndm_data.policy_rollouts(ndm_data.RolloutConfig(
            world="source", wrists=list(c.rollout_wrists), episodes=c.rollout_episodes * len(c.rollout_wrists),
            **roll), self.policy(), out, c.policy, self.progress)
        sets["ood"] = lambda out: ndm_data.policy_rollouts(ndm_data.RolloutConfig(
            world="target", wrists=[c.ood_wrist], episodes=c.ood_episodes, **{**roll, "seed": c.seed + 1}),
            self.policy(), out, c.policy, self.progress)
        replay = dict(steps=c.steps, num_envs=c.num_envs, seed=c.seed, threads=c.threads)
        rollouts = str(self.data / "source_rollouts")
        for w in c.data_wrists:
            for name, kw in ((f"chaos_box_{w}", dict(scene="chaos_box", episodes=self.n_max)),
                             (f"chaos_box_noiseless_{w}", dict(scene="chaos_box", episodes=c.noiseless_episodes,
                                                               noise_probability=0.0)),
                             (f"free_hand_{w}", dict(scene="hand_only", episodes=c.free_hand_episodes))):
                sets[name] = lambda out, w=w, kw=kw: ndm_data.replay_dataset(ndm_data.ReplayConfig(
                    source="sim_rollouts", source_path=rollouts, wrist=w, world="target", **kw, **replay), out,
                    self.progress)
            for kind in ndm_data.WAVES:
                for world in ("target", "source"):
                    sets[f"waves_{kind}_{world}_{w}"] = lambda out, w=w, kind=kind, world=world: ndm_data.replay_dataset(
                        ndm_data.ReplayConfig(source=kind, scene="hand_only", world=world, wrist=w,
                                              episodes=c.wave_episodes, noise_probability=0.0, **replay),
                        out, self.progress)
        return {name: (self.data / name, fn) for name, fn in sets.items()}

    def make_data(self) -> dict[str, dict]:
        sets = self.datasets()
        stats = {}
        bar = self.bar(len(sets), "data")
        for name, (path, fn) in sets.items():
            bar.set_postfix_str(name)
            if not path.exists():
                fn(path)
            stats[name] = _dataset_stats(path)
            bar.update()
        bar.close()
        return stats

    def ds(self, prefix: str) -> list[str]:
        """Dataset directories of every data wrist for a name prefix (e.g. chaos_box)."""
        return [str(self.data / f"{prefix}_{w}") for w in self.cfg.data_wrists]

    # ------------------------------------------------------------------------------ 2. sysid
    def sysid(self) -> dict:
        from dexndm_training import sysid

        cfg = sysid.SysIdConfig(population=self.cfg.sysid_population, iterations=self.cfg.sysid_iterations,
                                seed=self.cfg.seed)
        out = self.root / "sysid"
        if (out / sysid.RESULT_FILE).exists():
            return sysid.load_result(out)
        return sysid.identify(out, "target", cfg=cfg, threads=self.cfg.threads, progress=self.progress)

    # ------------------------------------------------------------------------------ 3. models
    def model_plan(self) -> dict[str, dict]:
        """name -> DynamicsConfig fields, in training order (fine-tunes after their pretrained model)."""
        c = self.cfg
        base = dict(window=10, hidden=list(c.hidden), epochs=c.dyn_epochs, batch_size=c.dyn_batch_size,
                    max_batches_per_epoch=c.dyn_max_batches, seed=c.seed)
        src = [str(self.data / "source_rollouts")]
        plan: dict[str, dict] = {}
        for g in ("joint", "finger", "hand"):
            plan[f"{g}_source"] = dict(base, datasets=src, grouping=g)
        for n in c.chaos_episodes:
            for g in ("joint", "hand"):
                plan[f"{g}_chaos_n{n}"] = dict(base, datasets=self.ds("chaos_box"), grouping=g, max_episodes=n,
                                               init=self._model(f"{g}_source"))
            plan[f"joint_scratch_chaos_n{n}"] = dict(base, datasets=self.ds("chaos_box"), grouping="joint",
                                                     max_episodes=n)
        n = self.n_max
        plan[f"finger_chaos_n{n}"] = dict(base, datasets=self.ds("chaos_box"), grouping="finger", max_episodes=n,
                                          init=self._model("finger_source"))
        tune = dict(base, grouping="joint", init=self._model("joint_source"))
        plan["joint_noiseless"] = dict(tune, datasets=self.ds("chaos_box_noiseless"))
        plan[f"joint_noisy_n{c.noiseless_episodes}"] = dict(tune, datasets=self.ds("chaos_box"),
                                                            max_episodes=c.noiseless_episodes)
        plan["joint_free_hand"] = dict(tune, datasets=self.ds("free_hand"))
        plan["joint_waves"] = dict(tune, datasets=[p for k in ("sine", "square", "square_noise")
                                                   for p in self.ds(f"waves_{k}_target")])
        plan["uan_actuator"] = dict(base, grouping="shared", datasets=plan["joint_waves"]["datasets"])
        return plan

    def _model(self, name: str) -> str:
        return str(self.models / name / "dynamics.pt")

    def train_models(self) -> None:
        from dexndm_training.dynamics import DynamicsConfig, train_dynamics

        plan = self.model_plan()
        bar = self.bar(len(plan), "models")
        for name, settings in plan.items():
            bar.set_postfix_str(name)
            out = self.models / name
            if not (out / "dynamics_report.json").exists():
                train_dynamics(DynamicsConfig(**settings), out, progress=self.progress)
            bar.update()
        bar.close()

    # ------------------------------------------------------------------------------ 4. methods
    def train_methods(self) -> None:
        from dexndm_training import baselines, residual

        c = self.cfg
        res = dict(width=c.residual_width, blocks=2, epochs=c.residual_epochs, batch_size=c.residual_batch_size,
                   max_batches_per_epoch=c.residual_max_batches, seed=c.seed)
        rollouts = [str(self.data / "source_rollouts")]
        jobs = {
            "dexndm": lambda out: residual.train_residual(residual.ResidualConfig(
                datasets=rollouts, dynamics=self._model(f"joint_chaos_n{self.n_max}"), **res), out,
                progress=self.progress),
            "wholehand": lambda out: residual.train_residual(residual.ResidualConfig(
                datasets=rollouts, dynamics=self._model(f"hand_chaos_n{self.n_max}"), **res), out,
                progress=self.progress),
            "asap": lambda out: residual.train_residual(residual.ResidualConfig(
                datasets=self.ds("free_hand"), dynamics=self._model("joint_source"), **res), out,
                progress=self.progress),
            "uan": lambda out: baselines.train_compensator(baselines.CompensatorConfig(
                datasets=[p for k in ("sine", "square", "square_noise") for p in self.ds(f"waves_{k}_source")],
                dynamics=self._model("uan_actuator"), epochs=c.residual_epochs, batch_size=c.residual_batch_size,
                max_batches_per_epoch=c.residual_max_batches, seed=c.seed), out, progress=self.progress),
        }
        bar = self.bar(len(jobs), "methods")
        for name, job in jobs.items():
            bar.set_postfix_str(name)
            out = self.root / "methods" / name
            if not any((out / f).exists() for f in (residual.MODEL_FILE, baselines.COMPENSATOR_FILE)):
                job(out)
            bar.update()
        bar.close()

    def method_callables(self) -> dict:
        from dexndm_training import baselines, residual, sysid

        methods_dir = self.root / "methods"
        return {
            "direct": None,
            "dexndm": residual.residual_fn(residual.load_residual(methods_dir / "dexndm")[0]),
            "sysid": baselines.SysidCompensator(sysid.identified_world(self.root / "sysid")),
            "wholehand": residual.residual_fn(residual.load_residual(methods_dir / "wholehand")[0]),
            "uan": baselines.compensator_fn(baselines.load_compensator(methods_dir / "uan")),
            "asap": baselines.AsapCompensator(residual.load_residual(methods_dir / "asap")[0]),
        }

    # ------------------------------------------------------------------------------ 5. eval
    def evaluate(self) -> dict[str, dict]:
        from dexndm_training import tracking

        c = self.cfg
        conditions = [(w, a) for w in c.eval_wrists for a in c.axis_sets]
        bar = self.bar(len(conditions) * (1 + len(METHODS)), "eval")
        methods, results = None, {}
        for wrist, axis in conditions:
            path = self.root / "eval" / f"{wrist}_{axis}.json"
            if path.exists():
                results[f"{wrist}/{axis}"] = json.loads(path.read_text())
                bar.update(1 + len(METHODS))
                continue
            methods = methods or self.method_callables()
            bar.set_postfix_str(f"{wrist} {axis}")
            cfg = tracking.TrackingConfig(wrist=wrist, object=c.object, axis=axis, episodes=c.eval_episodes,
                                          steps=c.steps, seed=c.seed + 1000, threads=c.threads)
            out = tracking.compare_methods(self.policy(), cfg, methods, progress=lambda name: bar.update())
            _write_json(path, out)
            results[f"{wrist}/{axis}"] = out
        bar.close()
        return results

    def ood_errors(self) -> dict[str, dict]:
        from dexndm_training.dynamics import evaluate_dynamics, load_dynamics

        path = self.root / "eval" / "ood.json"
        done = json.loads(path.read_text()) if path.exists() else {}
        plan = self.model_plan()
        bar = self.bar(len(plan), "ood")
        for name in plan:
            if name not in done:
                model, record = load_dynamics(self._model(name))
                done[name] = {**evaluate_dynamics(model, [str(self.data / "ood")]),
                              "train_rows": record["report"]["train_rows"]}
                _write_json(path, done)
            bar.update()
        bar.close()
        return done

    # ------------------------------------------------------------------------------ all
    def run(self, docs_dir: str | os.PathLike) -> dict:
        start = time.time()
        data = self.make_data()
        sysid_result = self.sysid()
        self.train_models()
        self.train_methods()
        results = self.evaluate()
        ood = self.ood_errors()
        summary = summarize(self.cfg, results, ood)
        report = {"config": self.cfg.to_dict(), "run_dir": str(self.root), "summary": summary, "ood": ood,
                  "data": data, "sysid": {k: sysid_result[k] for k in ("err_before_rad", "err_after_rad", "identified")},
                  "methods": _method_reports(self.root / "methods"),
                  "conditions": {k: _strip(v) for k, v in results.items()}, "seconds_this_call": time.time() - start}
        write_report(report, docs_dir)
        return report


# ---------------------------------------------------------------------------------------- summary and report
def summarize(cfg: StudyConfig, results: dict[str, dict], ood: dict[str, dict]) -> dict:
    """Per method: means over eval conditions of Rot, TTF, RotR, RotP and the tracking error; the headline."""
    per_method = {}
    for m in ("source", *METHODS):
        rows = [r[m] for r in results.values()]
        per_method[m] = {k: float(np.mean([row[k] for row in rows])) for k in ("rot", "ttf", "rotr", "rotp")}
        if m != "source":
            per_method[m]["track_err"] = float(np.mean([row["track_err"] for row in rows]))
    n_min = min(cfg.chaos_episodes)
    headline = {"direct_rot_rad": per_method["direct"]["rot"], "dexndm_rot_rad": per_method["dexndm"]["rot"],
                "direct_ttf": per_method["direct"]["ttf"], "dexndm_ttf": per_method["dexndm"]["ttf"],
                "direct_track_err": per_method["direct"]["track_err"],
                "dexndm_track_err": per_method["dexndm"]["track_err"],
                "jointwise_ood_err": ood[f"joint_chaos_n{n_min}"]["mae"],
                "wholehand_ood_err": ood[f"hand_chaos_n{n_min}"]["mae"]}
    return {"per_method": per_method, "headline": headline}


def last_line(summary: dict) -> str:
    h = summary["headline"]
    return " ".join(f"{k}={v:.3f}" if k.endswith(("rot_rad", "ttf")) else f"{k}={v:.5f}" for k, v in h.items())


ABLATIONS = (  # (question, [(label, model name)])
    ("grouping (pretrained, all Chaos Box episodes)", [("joint-wise", "joint_chaos_n{N}"), ("finger-wise",
                                                        "finger_chaos_n{N}"), ("whole-hand", "hand_chaos_n{N}")]),
    ("sim pretraining (joint-wise, all Chaos Box episodes)", [("pretrained + fine-tuned", "joint_chaos_n{N}"),
                                                              ("target data only", "joint_scratch_chaos_n{N}"),
                                                              ("source data only", "joint_source")]),
    ("load vs free hand (joint-wise, pretrained)", [("Chaos Box (load)", "joint_chaos_n{N}"),
                                                    ("free hand", "joint_free_hand")]),
    ("action noise (joint-wise, pretrained, same episode count)", [("with replay noise", "joint_noisy_n{M}"),
                                                                   ("without", "joint_noiseless")]),
    ("policy replay vs waves (free hand, joint-wise, pretrained)", [("replayed rollouts", "joint_free_hand"),
                                                                    ("base waves", "joint_waves")]),
    ("actuator net (UAN-style, shared, waves)", [("shared per-joint net", "uan_actuator")]),
)


def ablation_rows(cfg: StudyConfig, ood: dict) -> list[tuple[str, str, float, int]]:
    rows = []
    for question, entries in ABLATIONS:
        for label, name in entries:
            key = name.format(N=max(cfg.chaos_episodes), M=cfg.noiseless_episodes)
            rows.append((question, label, ood[key]["mae"], ood[key]["train_rows"]))
    return rows


def table(report: dict) -> str:
    cfg = StudyConfig(**report["config"])
    lines = ["| method | wrist | axes | Rot (rad) | TTF | RotR | RotP (rad/s) | track err (mrad) | vs direct |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cond, res in report["conditions"].items():
        wrist, axes = cond.split("/")
        lines.append(f"| source world (reference) | {wrist} | {axes} | {res['source']['rot']:.3f} | "
                     f"{res['source']['ttf']:.3f} | {res['source']['rotr']:.2f} | {res['source']['rotp']:.3f} | 0 | |")
        for m in METHODS:
            r = res[m]
            lines.append(f"| {METHOD_NAMES[m]} | {wrist} | {axes} | {r['rot']:.3f} | {r['ttf']:.3f} | {r['rotr']:.2f} | "
                         f"{r['rotp']:.3f} | {1e3 * r['track_err']:.1f} | "
                         f"{r['track_err'] / res['direct']['track_err']:.2f} |")
    pm = report["summary"]["per_method"]
    lines += ["", "Means over the conditions above:", "",
              "| method | Rot (rad) | TTF | RotR | RotP (rad/s) | track err (mrad) |", "|---|---|---|---|---|---|"]
    for m in ("source", *METHODS):
        r = pm[m]
        err = f"{1e3 * r['track_err']:.1f}" if "track_err" in r else "0"
        lines.append(f"| {METHOD_NAMES.get(m, 'source world (reference)')} | {r['rot']:.3f} | {r['ttf']:.3f} | "
                     f"{r['rotr']:.2f} | {r['rotp']:.3f} | {err} |")
    ood = report["ood"]
    lines += ["", f"One-step prediction error on the OOD set (the base policy rotating the object in the target world, "
              f"{cfg.ood_wrist}), MAE in mrad; zero-delta predictor: {1e3 * next(iter(ood.values()))['zero_delta_mae']:.2f}:",
              "", "| ablation | model | OOD MAE (mrad) | training rows |", "|---|---|---|---|"]
    for question, label, mae, rows in ablation_rows(cfg, ood):
        lines.append(f"| {question} | {label} | {1e3 * mae:.3f} | {rows} |")
    lines += ["", "Data scaling (OOD MAE, mrad, against Chaos Box episodes):", "",
              "| episodes | joint-wise (pretrained) | whole-hand (pretrained) | joint-wise (target data only) |",
              "|---|---|---|---|"]
    for n in cfg.chaos_episodes:
        lines.append(f"| {n} | {1e3 * ood[f'joint_chaos_n{n}']['mae']:.3f} | {1e3 * ood[f'hand_chaos_n{n}']['mae']:.3f} | "
                     f"{1e3 * ood[f'joint_scratch_chaos_n{n}']['mae']:.3f} |")
    return "\n".join(lines) + "\n"


def plots(report: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = StudyConfig(**report["config"])
    made = []
    conds = list(report["conditions"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(METHODS)
    for i, m in enumerate(METHODS):
        xs = np.arange(len(conds)) + i * width
        axes[0].bar(xs, [1e3 * report["conditions"][c][m]["track_err"] for c in conds], width, label=METHOD_NAMES[m])
        axes[1].bar(xs, [report["conditions"][c][m]["rot"] for c in conds], width, label=METHOD_NAMES[m])
    for ax, title in zip(axes, ("joint tracking error vs the source world (mrad)", "Rot (rad)")):
        ax.set_xticks(np.arange(len(conds)) + 0.4 - width / 2, conds, rotation=15)
        ax.set_title(title)
    axes[1].plot(np.arange(len(conds)) + 0.4 - width / 2, [report["conditions"][c]["source"]["rot"] for c in conds],
                 "k_", markersize=30, label="source world")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    made.append(out_dir / "sim2sim_methods.png")
    fig.savefig(made[-1], dpi=110)
    plt.close(fig)

    ood = report["ood"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("joint_chaos_n{}", "joint-wise, pretrained"), ("hand_chaos_n{}", "whole-hand, pretrained"),
                       ("joint_scratch_chaos_n{}", "joint-wise, target data only")):
        ax.plot(cfg.chaos_episodes, [1e3 * ood[key.format(n)]["mae"] for n in cfg.chaos_episodes], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("Chaos Box episodes")
    ax.set_ylabel("OOD one-step MAE (mrad)")
    ax.legend()
    fig.tight_layout()
    made.append(out_dir / "sim2sim_scaling.png")
    fig.savefig(made[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(conds), figsize=(4 * len(conds), 3.5), squeeze=False)
    for ax, c in zip(axes[0], conds):
        for m in METHODS:
            ax.plot(1e3 * np.asarray(report["conditions"][c][m]["per_tick"]), label=METHOD_NAMES[m], lw=1)
        ax.set_title(c)
        ax.set_xlabel("tick (50 ms)")
    axes[0][0].set_ylabel("|q_target - q_source| (mrad)")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    made.append(out_dir / "sim2sim_tracking.png")
    fig.savefig(made[-1], dpi=110)
    plt.close(fig)
    return made


def write_report(report: dict, docs_dir: str | os.PathLike) -> dict[str, Path]:
    out = Path(docs_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "sim2sim.json", report)
    pictures = plots(report, out)
    head = (f"# Sim-to-sim study (generated by `dexndm-train sim2sim`)\n\nRun directory `{report['run_dir']}`, "
            f"base policy `{report['config']['policy']}`. Plots: " + ", ".join(f"[{p.name}]({p.name})" for p in pictures)
            + "\n\n" + last_line(report["summary"]) + "\n\n")
    (out / "sim2sim.md").write_text(head + table(report))
    return {"json": out / "sim2sim.json", "markdown": out / "sim2sim.md", "plots": pictures}


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _strip(result: dict) -> dict:
    return {k: ({kk: vv for kk, vv in v.items() if kk not in ("per_joint", "per_episode", "fell_at")}
                if isinstance(v, dict) and k != "config" else v) for k, v in result.items()}


def _dataset_stats(path: Path) -> dict:
    from dexndm_training.dataset import Dataset

    ds = Dataset(path)
    return {"episodes": len(ds.episodes), "transitions": int(sum(e["length"] for e in ds.episodes))}


def _method_reports(root: Path) -> dict:
    out = {}
    for name in ("dexndm", "wholehand", "asap"):
        path = root / name / "residual_report.json"
        if path.exists():
            rep = json.loads(path.read_text())["report"]
            out[name] = {"zero_eval_mae": rep["zero_residual_eval"]["mae"], "eval_mae": rep["eval"]["mae"],
                         "mean_abs_correction": rep["eval"]["mean_abs_residual"], "seconds": rep["seconds"]}
    path = root / "uan" / "compensator_report.json"
    if path.exists():
        rep = json.loads(path.read_text())["report"]
        out["uan"] = {"zero_eval_mae": rep["zero_correction_eval_mae"], "eval_mae": rep["eval_mae"],
                      "seconds": rep["seconds"]}
    return out
