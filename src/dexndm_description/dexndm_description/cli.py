"""`dexndm-sim`: the simulated LEAP hand from the command line.

    dexndm-sim info                              joint table, limits, fingertips at q = 0, worlds (JSON)
    dexndm-sim render --scene grasp --object irregular --wrist thumb_up --out hand.png [--ticks 20]
    dexndm-sim render --scene chaos_box --wrist base_up --out box.gif --ticks 40   (a short video)
    dexndm-sim bench [--envs 64 --ticks 4 --repeats 9]
    dexndm-sim holds [--envs 8 --seconds 10 --world source]   fraction of grasps still held, set x wrist
    dexndm-sim xml [--world target --scene grasp --object irregular --wrist base_up]   the MJCF of one world

bench ends with one line: `source_steps_per_s=... target_steps_per_s=... overhead_ratio=...`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np

from dexndm_description import hand, objects, wrist as wrists
from dexndm_description.worlds import SCENES, WorldConfig

# Nothing that imports mujoco is imported at module level: `render` must pick MUJOCO_GL first.


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


def info() -> dict:
    """Joint table (motor-ID order), MJCF chain order, fingertips at q = 0 in the palm frame, worlds."""
    from dexndm_description import mjcf, scene as scenes
    from dexndm_description.sim import BatchedHandSim

    with BatchedHandSim(num_envs=1, scene="hand_only", wrist="palm_down", object=None, threads=1) as sim:
        sim.reset(q=np.zeros(hand.NUM_JOINTS))
        tips = sim.fingertip_pos[0] - scenes.HAND_ORIGIN  # palm_down: palm axes = world axes
        model = sim.models[0]
        chain = [model.joint(k).name for k in range(hand.NUM_JOINTS)]
        mass = float(model.body_subtreemass[model.body("palm").id])
    return {
        "joints": [
            {"motor_id": j.motor_id, "name": j.name, "lower_rad": j.lower, "upper_rad": j.upper,
             "mjcf_chain_index": chain.index(j.name)}
            for j in hand.JOINTS
        ],
        "mjcf_chain_order": chain,
        "fingertips_at_zero_palm_frame_m": {name: np.round(tip, 5).tolist() for name, tip in zip(mjcf.FINGERTIP_SITES, tips)},
        "hand_mass_kg": round(mass, 4),
        "canonical_pose_rad": hand.CANONICAL_POSE.tolist(),
        "worlds": {
            cfg.name: {f.name: _jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
            for cfg in (WorldConfig.source(), WorldConfig.target())
        },
        "scenes": list(SCENES),
        "object_sets": list(objects.OBJECT_SETS),
        "wrist_orientations": {k: v.tolist() for k, v in wrists.WRIST_ORIENTATIONS.items()},
    }


def render(args) -> str:
    """Render a picture (.png) or a short video (.gif) of one world after `ticks` control ticks."""
    from dexndm_description import render as rendering

    backend = rendering.ensure_gl()
    from dexndm_description.sim import BatchedHandSim

    obj = None if args.object == "none" else args.object
    scene = args.scene if (obj is not None or args.scene != "grasp") else "hand_only"
    frames = []
    with BatchedHandSim(num_envs=1, world=args.world, scene=scene, wrist=args.wrist, object=obj,
                        seed=args.seed, threads=1, randomize=args.randomize) as sim:
        m, d = sim.models[0], sim.datas[0]
        import mujoco

        renderer = mujoco.Renderer(m, args.height, args.width)
        cam = rendering.camera_for(m, d, args.azimuth, args.elevation, args.distance)
        video = args.out.endswith(".gif")
        try:
            if video:
                frames.append(rendering.render_frame(m, d, camera=cam, renderer=renderer))
            for _ in range(args.ticks):
                sim.step()
                if video:
                    frames.append(rendering.render_frame(m, d, camera=cam, renderer=renderer))
            if not video:
                frames.append(rendering.render_frame(m, d, camera=cam, renderer=renderer))
        finally:
            renderer.close()
        fallen = bool(sim.object_fallen()[0])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if video:
        rendering.save_gif(args.out, frames, fps=1.0 / hand.CONTROL_DT)
    else:
        rendering.save_png(args.out, frames[-1])
    return f"out={args.out} frames={len(frames)} gl={backend} object_fallen={int(fallen)}"


def _time_tick_s(step, ticks: int) -> float:
    start = time.perf_counter()
    for _ in range(ticks):
        step()
    return (time.perf_counter() - start) / ticks


def bench(args) -> str:
    """Control steps per second of N worlds holding an object, source and target, and the batched
    step's cost over raw mujoco.mj_step on the same physics (one thread each). The variants are
    timed in turn within each repeat, so machine load hits them alike; figures are medians."""
    import mujoco
    from mujoco import rollout

    from dexndm_description.sim import BatchedHandSim

    n, ticks, repeats = args.envs, args.ticks, args.repeats
    noise = np.random.default_rng(0).normal(0.0, 0.03, size=(n, hand.NUM_JOINTS))
    lines, result = [], {}
    for world in ("source", "target"):
        pooled = BatchedHandSim(num_envs=n, world=world, object=args.object, seed=0, threads=args.threads)
        single = BatchedHandSim(num_envs=n, world=world, object=args.object, seed=0, threads=1)
        for sim in (pooled, single):
            sim.set_targets(hand.CANONICAL_POSE + noise)
            sim.step()
        cfg = single.config
        raw_models, raw_datas = single.models, [mujoco.MjData(m) for m in single.models]
        for m, src, dst in zip(single.models, single.datas, raw_datas):
            mujoco.mj_copyData(dst, m, src)

        def raw():
            for m, d in zip(raw_models, raw_datas):
                for _ in range(cfg.substeps):
                    mujoco.mj_step(m, d)

        variants = {"pooled": pooled.step, "single": single.step, "raw": raw}
        if world == "source":
            spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
            state = np.zeros((n, mujoco.mj_stateSize(pooled.models[0], spec)))
            for i, (m, d) in enumerate(zip(pooled.models, pooled.datas)):
                mujoco.mj_getState(m, d, state[i], spec)
            control = np.repeat(pooled.targets[:, None, :], cfg.substeps, axis=1)
            runner = rollout.Rollout(nthread=args.threads)
            roll_datas = [mujoco.MjData(pooled.models[0]) for _ in range(args.threads)]
            box = {"state": state}

            def roll():
                out, _ = runner.rollout(pooled.models, roll_datas, box["state"], control)
                box["state"] = out[:, -1, :]

            variants["rollout"] = roll
        times = {k: [] for k in variants}
        for _ in range(repeats):
            for name, fn in variants.items():
                times[name].append(_time_tick_s(fn, ticks))
        pooled.close()
        single.close()
        if world == "source":
            runner.close()
        med = {k: float(np.median(v)) for k, v in times.items()}
        ratio = float(np.median(np.array(times["single"]) / np.array(times["raw"])))
        result[world] = (med, ratio)
        lines.append(f"{world}: {n} worlds holding {args.object}, median tick {med['pooled'] * 1e3:.2f} ms with "
                     f"{args.threads} threads ({n / med['pooled']:.0f} steps/s), {med['single'] * 1e3:.2f} ms with 1 thread; "
                     f"raw mj_step {med['raw'] * 1e3:.2f} ms -> overhead {ratio:.3f}x, "
                     f"thread speed-up {med['single'] / med['pooled']:.2f}x")
        if "rollout" in med:
            lines.append(f"{world}: mujoco.rollout ({args.threads} threads, state in/out each tick) {med['rollout'] * 1e3:.2f} ms "
                         f"vs this thread pool {med['pooled'] * 1e3:.2f} ms")
    (src, overhead), (tgt, target_overhead) = result["source"], result["target"]
    lines.append(f"target/source cost ratio {tgt['pooled'] / src['pooled']:.2f}; target overhead over raw mj_step {target_overhead:.3f}x")
    lines.append(f"source_steps_per_s={n / src['pooled']:.1f} target_steps_per_s={n / tgt['pooled']:.1f} "
                 f"overhead_ratio={overhead:.3f}")
    return "\n".join(lines)


def holds(args) -> str:
    """Fraction of randomized objects of each set still in the hand after `seconds` of holding the
    canonical pose, per wrist orientation (the grasp placement's quality)."""
    from dexndm_description.sim import BatchedHandSim

    wrist_names = args.wrists.split(",")
    ticks = int(round(args.seconds / hand.CONTROL_DT))
    lines = [f"{'set':16s} " + " ".join(f"{w:>10s}" for w in wrist_names)]
    total = []
    for name in objects.OBJECT_SETS:
        row = []
        for w in wrist_names:
            with BatchedHandSim(num_envs=args.envs, world=args.world, wrist=w, object=name, seed=args.seed) as sim:
                for _ in range(ticks):
                    sim.step()
                row.append(float(np.mean(~sim.object_fallen())))
        total += row
        lines.append(f"{name:16s} " + " ".join(f"{v:10.2f}" for v in row))
    lines.append(f"world={args.world} envs={args.envs} seconds={args.seconds:g} mean_held={np.mean(total):.3f}")
    return "\n".join(lines)


def scene_xml(args) -> str:
    """The generated MJCF of one world (its object drawn from --seed), for reading or a MuJoCo viewer."""
    from dexndm_description import scene as scenes

    rng = np.random.default_rng(args.seed)
    obj = None if args.object == "none" or args.scene != "grasp" else objects.sample_shape(args.object, rng)
    return scenes.scene_xml(WorldConfig.named(args.world), args.scene, wrists.parse_wrist(args.wrist), obj, rng)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dexndm-sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="joint table, limits, fingertips at q = 0, worlds (JSON)")
    r = sub.add_parser("render", help="offscreen picture (.png) or short video (.gif)")
    r.add_argument("--scene", default="grasp", choices=SCENES)
    r.add_argument("--object", default="normal_cylinder", choices=list(objects.OBJECT_SETS) + ["none"])
    r.add_argument("--wrist", default="palm_up", help="a named orientation or 'x,y,z,w'")
    r.add_argument("--world", default="source", choices=("source", "target"))
    r.add_argument("--ticks", type=int, default=0, help="control ticks to run first (frames of a .gif)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--randomize", action="store_true", help="a random object of the set instead of the nominal one")
    r.add_argument("--width", type=int, default=480)
    r.add_argument("--height", type=int, default=360)
    r.add_argument("--azimuth", type=float, default=135.0)
    r.add_argument("--elevation", type=float, default=-25.0)
    r.add_argument("--distance", type=float, default=0.45)
    r.add_argument("--out", required=True, help="output .png or .gif")
    b = sub.add_parser("bench", help="control steps/s, source vs target, overhead over raw mj_step")
    b.add_argument("--envs", type=int, default=64)
    b.add_argument("--ticks", type=int, default=4)
    b.add_argument("--repeats", type=int, default=9)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--object", default="normal_cylinder", choices=objects.OBJECT_SETS)
    h = sub.add_parser("holds", help="fraction of grasps still held after N s, per object set and wrist")
    h.add_argument("--envs", type=int, default=8)
    h.add_argument("--seconds", type=float, default=10.0)
    h.add_argument("--world", default="source", choices=("source", "target"))
    h.add_argument("--wrists", default="palm_up,base_up,base_down,palm_down,thumb_up,thumb_down")
    h.add_argument("--seed", type=int, default=0)
    x = sub.add_parser("xml", help="print the generated MJCF of one world")
    x.add_argument("--world", default="source", choices=("source", "target"))
    x.add_argument("--scene", default="grasp", choices=SCENES)
    x.add_argument("--object", default="normal_cylinder", choices=list(objects.OBJECT_SETS) + ["none"])
    x.add_argument("--wrist", default="palm_up")
    x.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print(json.dumps(info(), indent=1))
        elif args.command == "render":
            if not args.out.endswith((".png", ".gif")):
                parser.error("--out must end in .png (picture) or .gif (video)")
            print(render(args))
        elif args.command == "xml":
            print(scene_xml(args))
        elif args.command == "holds":
            print(holds(args), flush=True)
        else:
            print(bench(args), flush=True)
    except ValueError as exc:
        print(f"dexndm-sim: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. no GL for rendering
        print(f"dexndm-sim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
