"""The sampling-MPC teacher: its score, its action path, that it turns the object, and its resumable collection."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from dexndm_training import metrics, rotations
from dexndm_training.cli import main
from dexndm_training.dataset import Dataset
from dexndm_training.env import EnvConfig, RotationEnv
from dexndm_training.mpc import MPCConfig, PredictiveSampler, _swing_angle, mppi_weights
from dexndm_training.rollout import rollout, zero_policy

#: A calm, nominal condition the teacher must turn in a few seconds: palm up, +z, no disturbance.
EASY = EnvConfig(num_envs=2, object="normal_cuboid", randomize=False, disturbance_scale=0.0, grasp_candidates=8,
                 episode_steps=60, seed=5, threads=2)
SMALL = MPCConfig(samples=12, horizon=12, knot_every=4, seed=1)


def test_swing_angle_ignores_turning_about_the_axis_and_measures_tipping():
    start = rotations.normalize(np.array([[0.1, 0.2, 0.3, 0.9]]))
    axis = np.array([[0.0, 0.0, 1.0]])
    turned = rotations.multiply(rotations.from_axis_angle(axis, np.array([1.3])), start)
    tipped = rotations.multiply(rotations.from_axis_angle(np.array([[1.0, 0.0, 0.0]]), np.array([0.4])), start)
    assert _swing_angle(turned, start, axis)[0] == pytest.approx(0.0, abs=1e-7)
    assert _swing_angle(tipped, start, axis)[0] == pytest.approx(0.4, abs=1e-7)


def test_mppi_weights_favour_high_scores_and_sharpen_with_lower_temperature():
    scores = np.array([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
    warm, cold = mppi_weights(scores, 1.0), mppi_weights(scores, 0.1)
    assert np.allclose(warm.sum(1), 1.0) and np.allclose(cold.sum(1), 1.0)
    assert warm[0, 2] > warm[0, 1] > warm[0, 0] and cold[0, 2] > warm[0, 2] > 0.5
    assert np.allclose(warm[1], 1 / 3)  # equal scores, equal weights


def test_score_prefers_turning_about_the_axis_to_tipping_and_dropping():
    env = RotationEnv(replace(EASY, num_envs=1))
    teacher = PredictiveSampler(env, SMALL)
    teacher.reset()
    try:
        pose = env.sim.object_pose[0]
        axis = env.axis_world[0]
        h = 6

        def path(turn_axis, rate, drop=0.0):
            out = np.zeros((1, 1, h, 7))
            for t in range(h):
                q = rotations.multiply(rotations.from_axis_angle(turn_axis[None], np.array([rate * (t + 1)])), pose[None, 3:])
                out[0, 0, t, :3] = pose[:3] + np.array([0.0, 0.0, -drop * (t + 1)])
                out[0, 0, t, 3:] = q[0]
            return out

        forward = teacher.score(path(axis, 0.05))[0, 0]
        backward = teacher.score(path(axis, -0.05))[0, 0]
        tipping = teacher.score(path(np.cross(axis, [1.0, 0.0, 0.0]) / np.linalg.norm(np.cross(axis, [1.0, 0.0, 0.0])), 0.05))[0, 0]
        dropping = teacher.score(path(axis, 0.05, drop=0.03))[0, 0]
        assert forward > 0 > backward
        assert forward > tipping and forward > dropping
    finally:
        teacher.close()
        env.close()


def test_the_teacher_acts_through_the_rate_limited_action_path():
    env = RotationEnv(EASY)
    teacher = PredictiveSampler(env, SMALL)
    try:
        env.reset()
        before = env.previous_target.copy()
        delta = teacher(env.get_observations())
        assert delta.shape == (2, 16) and delta.dtype == torch.float32
        assert torch.all(delta.abs() <= 1.0)
        env.step(delta)
        assert np.all(np.abs(env.previous_target - before) <= 1.0 / 24 + 1e-9)
    finally:
        teacher.close()
        env.close()


def test_the_teacher_turns_the_object_and_a_still_hand_does_not():
    """Rotation, not calm: in 3 s the teacher's mean turn about +z beats holding still and a uniform-random
    policy by a clear margin (all three on the same fresh episodes)."""
    turned = {}
    gen = torch.Generator().manual_seed(0)
    uniform = lambda obs: torch.rand(obs["policy"].shape[0], 16, generator=gen) * 2 - 1  # noqa: E731
    for who in ("mpc", "still", "random"):
        env = RotationEnv(EASY)
        teacher = PredictiveSampler(env, SMALL) if who == "mpc" else None
        try:
            result = rollout(env, teacher if teacher else {"still": zero_policy, "random": uniform}[who])
        finally:
            if teacher:
                teacher.close()
            env.close()
        per = metrics.episode_metrics(result.object_quat, result.angvel, result.axis_world, result.alive, EASY.episode_steps)
        turned[who] = float(per["rot"].mean())
    assert turned["mpc"] > max(turned["still"], turned["random"]) + 0.15, turned


def test_mppi_plans_act_within_the_action_path():
    env = RotationEnv(replace(EASY, num_envs=1))
    teacher = PredictiveSampler(env, replace(SMALL, temperature=0.5))
    try:
        env.reset()
        for _ in range(3):
            delta = teacher(env.get_observations())
            assert torch.all(delta.abs() <= 1.0) and torch.all(torch.isfinite(delta))
            env.step(delta)
    finally:
        teacher.close()
        env.close()


def test_a_quiet_first_knot_keeps_every_candidate_on_the_plans_present():
    """first_knot_noise scales the noise on the plan's first knot only: at 0 every candidate starts where the
    nominal plan does (so the executed delta moves smoothly), while the later knots still explore."""
    env = RotationEnv(replace(EASY, num_envs=1))
    teacher = PredictiveSampler(env, replace(SMALL, first_knot_noise=0.0))
    try:
        env.reset()
        teacher.plan[:] = 0.3
        knots = teacher._candidates()
        assert np.allclose(knots[:, :, 0], 0.3)
        assert np.std(knots[:, 1:, 1:]) > 0.3
    finally:
        teacher.close()
        env.close()


def test_servo_worlds_are_refused():
    from dexndm_description.sim import BatchedHandSim

    sim = BatchedHandSim(num_envs=1, world="target", object="normal_cuboid", threads=1)
    env = RotationEnv(replace(EASY, num_envs=1), sim=sim)
    try:
        with pytest.raises(ValueError, match="source world"):
            PredictiveSampler(env, SMALL)
    finally:
        env.close()


def test_collection_writes_shards_and_a_curve_and_resumes(tmp_path, capsys):
    out = tmp_path / "teacher"
    args = ["mpc", "--object", "normal_cuboid", "--num-envs", "2", "--episode-steps", "12", "--rounds", "1",
            "--samples", "6", "--horizon", "6", "--knot-every", "3", "--min-rot", "-10", "--threads", "1",
            "--grasp-candidates", "8", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 0  # resumes: one more round
    curve = json.loads((out / "curve.json").read_text())
    assert [c["round"] for c in curve] == [0, 1]
    assert curve[1]["env_steps"] > curve[0]["env_steps"] and curve[1]["wall_s"] > curve[0]["wall_s"]
    for c in curve:
        shard = out / "shards" / f"round_{c['round']:04d}"
        if c["kept"]:
            data = Dataset(shard)
            assert len(data.episodes) == c["kept"] and len(data) == 12 * c["kept"]
            assert np.all(np.abs(np.diff(data["target"][:12], axis=0)) <= 1.0 / 24 + 1e-6)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"out={out} rounds=2 episodes=4 ")
    assert any((out / "tb").iterdir())  # TensorBoard scalars per round
    assert main(["curve", str(out), "--out", str(tmp_path / "curves")]) == 0
    plotted = json.loads((tmp_path / "curves" / "curves.json").read_text())
    assert [p["round"] for p in plotted["teacher"]] == [0, 1]
    assert (tmp_path / "curves" / "curves.png").stat().st_size > 1000
    changed = [a if a != "6" else "7" for a in args]
    assert main(changed) == 2  # another config in the same directory is refused with a clear error
    assert "another config" in capsys.readouterr().err
    # the env's reward weights (a default that changed since the run began) do not refuse a resume
    saved = json.loads((out / "config.json").read_text())
    saved["env"]["reward"]["pose"] = 0.123
    (out / "config.json").write_text(json.dumps(saved))
    assert main(args) == 0
    assert [c["round"] for c in json.loads((out / "curve.json").read_text())] == [0, 1, 2]


def test_dagger_runs_the_student_and_keeps_the_teachers_labels(tmp_path):
    """With a student, the worlds execute the student's deltas (here a still hand: every delta 0) while the
    shard stores the teacher's deltas at those states; BC then clones the labels, not what was executed."""
    from dexndm_training.bc import BCConfig, load_pairs, train_bc
    from dexndm_training.networks import GeneralistPolicy

    still = GeneralistPolicy(32, 1)
    for p in still.mlp.parameters():
        torch.nn.init.zeros_(p)
    student = tmp_path / "still.pt"
    torch.save({"state_dict": still.state_dict(), "config": {"width": 32, "blocks": 1}}, student)
    out = tmp_path / "dagger"
    args = ["mpc", "--object", "normal_cuboid", "--num-envs", "2", "--episode-steps", "12", "--rounds", "1",
            "--samples", "6", "--horizon", "6", "--knot-every", "3", "--threads", "1", "--grasp-candidates", "8",
            "--out", str(out), "--student", str(student), "--beta", "0"]
    assert main(args) == 0
    curve = json.loads((out / "curve.json").read_text())
    assert curve[0]["student"] == str(student) and curve[0]["beta"] == 0.0
    data = Dataset(out / "shards" / "round_0000")
    assert data.index["provenance"]["source"] == "dagger"
    assert len(data.episodes) == 2  # failed or not, every world's steps are labelled (here none fell)
    first = data.episode_slice(0)
    assert np.allclose(np.diff(data["target"][first], axis=0), 0.0, atol=1e-6)  # the still student acted
    labels = np.asarray(data["label"][first])
    assert labels.shape == (12, 16) and np.abs(labels).max() > 0.05  # the teacher wanted to move
    pairs = load_pairs([data], only_successful=False, eval_fraction=0.5)
    train_ids, _ = data.split_episodes(0.5, 0)
    assert np.allclose(pairs["train"][1], np.asarray(data["label"][data.episode_slice(int(train_ids[0]))]).clip(-1, 1))
    _, report = train_bc(BCConfig(width=32, blocks=1, epochs=1, batch_size=8, datasets=[str(out / "shards" / "round_0000")],
                                  only_successful=False), tmp_path / "bc", progress=False)
    assert report["train_rows"] == 12


def test_dagger_refuses_a_missing_student_and_a_bad_beta(tmp_path):
    from dexndm_training.mpc import DaggerMix, load_student

    with pytest.raises(FileNotFoundError, match="dexndm-train bc"):
        load_student(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="beta"):
        DaggerMix(None, None, 1.5)
