"""`dexndm-train dagger`: the student acts, the teacher labels, BC retrains, the curve grows, a rerun resumes."""
import json

import torch

from dexndm_training.cli import main
from dexndm_training.dataset import Dataset
from dexndm_training.networks import GeneralistPolicy

TINY = ["--objects", "normal_cuboid", "--num-envs", "2", "--episode-steps", "12", "--threads", "1", "--samples", "6",
        "--horizon", "6", "--knot-every", "3", "--width", "16", "--blocks", "1", "--epochs", "1", "--batch-size", "8",
        "--eval-episodes", "2"]


def _still_student(path):
    net = GeneralistPolicy(16, 1, motion=True)
    for p in net.mlp.parameters():
        torch.nn.init.zeros_(p)
    torch.save({"state_dict": net.state_dict(), "config": {"width": 16, "blocks": 1, "motion": True}}, path)
    return path


def test_dagger_iterates_labels_the_students_states_and_resumes(tmp_path, capsys):
    out = tmp_path / "dagger"
    init = _still_student(tmp_path / "still.pt")
    assert main(["dagger", "--out", str(out), "--iterations", "1", "--init-student", str(init), *TINY]) == 0
    curve = json.loads((out / "curve.json").read_text())
    assert len(curve) == 1 and curve[0]["beta"] == 0.5 and curve[0]["student"] == "student_0001.pt"
    assert {"rot", "ttf", "rotp", "mix"} <= set(curve[0]["normal_cuboid"])
    assert (out / "student_0001.pt").exists()
    shard = Dataset(out / "normal_cuboid" / "shards" / "round_0000")
    assert shard.index["provenance"]["source"] == "dagger" and "label" in shard.arrays
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"out={out} iterations=1 normal_cuboid_rot_rad=")
    # a rerun goes on: iteration 1 with student_0001 acting, a lower beta, BC on both rounds
    assert main(["dagger", "--out", str(out), "--iterations", "1", *TINY]) == 0
    curve = json.loads((out / "curve.json").read_text())
    assert [c["iteration"] for c in curve] == [0, 1] and curve[1]["beta"] < curve[0]["beta"]
    assert curve[1]["train_rows"] > curve[0]["train_rows"] and curve[1]["env_steps"] > curve[0]["env_steps"]
    mpc_curve = json.loads((out / "normal_cuboid" / "curve.json").read_text())
    assert mpc_curve[1]["student"].endswith("student_0001.pt")
    assert any((out / "tb").iterdir())
    assert main(["curve", str(out), "--out", str(tmp_path / "curves")]) == 0  # one series per object, the student's
    plotted = json.loads((tmp_path / "curves" / "curves.json").read_text())
    assert [p["iteration"] for p in plotted["dagger.normal_cuboid"]] == [0, 1]
    assert plotted["dagger.normal_cuboid"][1]["rot"] == curve[1]["normal_cuboid"]["rot"]


def test_dagger_refuses_a_new_run_without_a_student_and_a_changed_config(tmp_path, capsys):
    out = tmp_path / "dagger"
    assert main(["dagger", "--out", str(out), "--iterations", "1", *TINY]) == 2
    assert "--init-student" in capsys.readouterr().err
    assert main(["dagger", "--out", str(out), "--iterations", "0", "--init-student", str(tmp_path / "nope.pt"), *TINY]) == 2
    assert "not found" in capsys.readouterr().err
    init = _still_student(tmp_path / "still.pt")
    assert main(["dagger", "--out", str(out), "--iterations", "0", "--init-student", str(init), *TINY]) == 0
    changed = [a if a != "6" else "7" for a in TINY]
    assert main(["dagger", "--out", str(out), "--iterations", "1", *changed]) == 2
    assert "another config" in capsys.readouterr().err


def test_a_ppo_specialist_teaches_without_an_initial_student(tmp_path):
    """--teacher-run: a trained (here privileged, gait-based) actor labels; iteration 0 is the teacher alone, whose labels
    are the deltas the worlds executed; iteration 1 has the student acting, so labels and actions part."""
    import numpy as np

    from dexndm_training import ppo
    from dexndm_training.env import EnvConfig

    torch.set_num_threads(1)
    teacher = tmp_path / "specialist"  # a privileged actor on a gait: the teacher reads the episode clock too
    gait = tmp_path / "gait.json"
    gait.write_text(json.dumps({"amplitude": [0.2] * 16, "phase": [0.0] * 16, "offset": [0.0] * 16, "frequency": 1.0}))
    ppo.train(EnvConfig(num_envs=2, episode_steps=8, grasp_candidates=8, threads=1, action_mode="gait_residual",
                        gait=str(gait)),
              ppo.PPOConfig(num_steps_per_env=8, iterations=1, save_interval=1, eval_episodes=0, init_std=1.0,
                            actor_groups=["policy", "privileged"]), teacher)
    out = tmp_path / "dagger"
    assert main(["dagger", "--out", str(out), "--iterations", "2", "--teacher-run", str(teacher), *TINY]) == 0
    curve = json.loads((out / "curve.json").read_text())
    assert [c["beta"] for c in curve] == [1.0, 0.35] and not (out / "student_0000.pt").exists()

    def executed_share(shard_dir):
        shard = Dataset(shard_dir)
        assert shard.index["provenance"]["teacher"] == str(teacher)
        label, target = shard.arrays["label"], shard.arrays["target"]
        step = np.diff(target, axis=0) * 24.0
        return np.mean(np.abs(step - np.clip(label[1:], -1.0, 1.0)) < 1e-4)

    assert executed_share(out / "normal_cuboid" / "shards" / "round_0000") > 0.9  # (joint limits clip a few)
    assert executed_share(out / "normal_cuboid" / "shards" / "round_0001") < 0.9
    assert main(["dagger", "--out", str(out), "--iterations", "0", "--teacher-run", str(tmp_path / "nope"), *TINY]) == 2


def test_each_object_set_has_its_own_gait_teacher(tmp_path):
    """--teachers OBJECT=PATH: each set's rounds are labelled by its own teacher (here two gaits), whose deltas the
    worlds execute in iteration 0; a teacher for a set not trained on, or a missing file, is refused."""
    import numpy as np

    from dexndm_training.gait import Gait

    gaits = {}
    for name, amplitude in (("normal_cuboid", 0.3), ("normal_cylinder", -0.3)):
        gaits[name] = tmp_path / f"{name}.json"
        gaits[name].write_text(json.dumps({"amplitude": [amplitude] * 16, "phase": [0.0] * 16, "offset": [0.0] * 16,
                                           "frequency": 1.0}))
    tiny = [a for a in TINY if a != "normal_cuboid"]
    tiny[tiny.index("--objects") + 1:tiny.index("--objects") + 1] = ["normal_cuboid", "normal_cylinder"]
    teachers = ["--teachers", *(f"{k}={v}" for k, v in gaits.items())]
    out = tmp_path / "dagger"
    assert main(["dagger", "--out", str(out), "--iterations", "1", *teachers, *tiny]) == 0
    for name, path in gaits.items():
        shard = Dataset(out / name / "shards" / "round_0000")
        assert shard.index["provenance"]["teacher"] == str(path)
        label, target = shard.arrays["label"], shard.arrays["target"]
        # iteration 0: the teacher acts alone, so the labels are the deltas the worlds executed ...
        executed = np.diff(target, axis=0) * 24.0
        assert np.mean(np.abs(executed - np.clip(label[1:], -1.0, 1.0)) < 1e-4) > 0.9
        # ... and they follow this set's gait: sin rises over its first half second, +0.3 or -0.3 rad
        assert np.sign(label[:8].sum()) == np.sign(Gait.load(path).amplitude[0])
    assert main(["dagger", "--out", str(tmp_path / "d2"), "--iterations", "0", "--teachers",
                 f"long_cuboid={gaits['normal_cuboid']}", *tiny]) == 2
    assert main(["dagger", "--out", str(tmp_path / "d3"), "--iterations", "0", "--teachers",
                 f"normal_cuboid={tmp_path / 'nope.json'}", *tiny]) == 2
