"""DexNDM data: the batched generator and the Chaos Box bag path give the same dataset; rollouts run full length."""
import json
from pathlib import Path

import numpy as np
import pytest

from dexndm_collect import bag
from dexndm_collect.collector import CollectionRun
from dexndm_description import hand
from dexndm_description.wrist import parse_wrist
from dexndm_driver.backends import SimBackend
from dexndm_driver.backends import WorldConfig as DriverWorld
from dexndm_training import cli, ndm_data
from dexndm_training.dataset import ARRAYS, Dataset, Episode, write_dataset

POLICY = str(Path(__file__).resolve().parents[2] / "src" / "dexndm_policy" / "models" / "generalist.onnx")
WRIST_TOPIC = "/dexndm/wrist_orientation"


class Outputs:
    """The chaos_box node's outputs, serialized with the rosbags typestore instead of rclpy."""

    def __init__(self, store, source: str, wrist: str):
        self.store, self.source, self.wrist, self.commands = store, source, wrist, []
        self.T, self.H = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]

    def command(self, target, state_stamp_ns):
        self.commands.append(np.array(target, dtype=float))
        msg = self.store.types["dexndm_msgs/msg/HandCommand"](
            header=self.H(stamp=self.T(0, 0), frame_id=""), state_stamp=self.T(*divmod(state_stamp_ns, 10**9)),
            position=np.asarray(target, dtype=float))
        return self.store.serialize_cdr(msg, "dexndm_msgs/msg/HandCommand")

    def event(self, kind, episode, steps, reason):
        msg = self.store.types["dexndm_msgs/msg/EpisodeEvent"](
            header=self.H(stamp=self.T(0, 0), frame_id=""), event=kind, episode=episode, steps=steps,
            source=self.source, wrist=self.wrist, reason=reason)
        return self.store.serialize_cdr(msg, "dexndm_msgs/msg/EpisodeEvent")

    def state(self, q, stamp):
        msg = self.store.types["sensor_msgs/msg/JointState"](
            header=self.H(stamp=self.T(*divmod(stamp, 10**9)), frame_id=""), name=list(hand.JOINT_NAMES),
            position=np.asarray(q, dtype=float), velocity=np.zeros(16), effort=np.zeros(16))
        return self.store.serialize_cdr(msg, "sensor_msgs/msg/JointState")

    def wrist_msg(self, quat, stamp):
        Q = self.store.types["geometry_msgs/msg/Quaternion"]
        msg = self.store.types["geometry_msgs/msg/QuaternionStamped"](
            header=self.H(stamp=self.T(*divmod(stamp, 10**9)), frame_id="world"), quaternion=Q(*quat))
        return self.store.serialize_cdr(msg, "geometry_msgs/msg/QuaternionStamped")


def collect_bag(cfg: ndm_data.ReplayConfig, out):
    """A Chaos Box collection as `dexndm collect` runs it: the collector in lockstep with the sim driver's backend."""
    store = bag.make_typestore()
    backend = SimBackend(DriverWorld(wrist=parse_wrist(cfg.wrist), object=None, scene=cfg.scene, world=cfg.world,
                                     seed=cfg.seed), ndm_data.INITIAL_POSES[cfg.initial_pose])
    backend.open()
    outputs = Outputs(store, cfg.source, cfg.wrist)
    writer = bag.EpisodeBagWriter(out, min_free_mb=0, typestore=store)
    run = CollectionRun(writer, cfg.replay_source(), cfg.episodes, outputs, wrist_label=cfg.wrist,
                        reset_steps=cfg.reset_steps, settle_steps=cfg.settle_steps)
    try:
        while not run.done:
            reading, stamp = backend.read(), backend.sim_time_ns()
            run.record(WRIST_TOPIC, outputs.wrist_msg(backend.world().wrist_quat, stamp))  # as the sim driver does
            sent = len(outputs.commands)
            run.on_state(reading.q, stamp, outputs.state(reading.q, stamp))
            if run.done:
                break
            assert len(outputs.commands) == sent + 1
            backend.write(outputs.commands[-1])
            backend.step()
    finally:
        backend.close()
    assert not run.failure


def test_batched_replay_and_converted_bags_give_the_same_dataset(tmp_path):
    cfg = ndm_data.ReplayConfig(source="square_noise", scene="chaos_box", wrist="thumb_up", episodes=2, num_envs=1,
                                steps=12, reset_steps=4, settle_steps=2, seed=3, threads=1)
    ndm_data.replay_dataset(cfg, tmp_path / "batched", progress=False)
    collect_bag(cfg, tmp_path / "bag")
    assert cli.main(["convert-bags", str(tmp_path / "bag"), str(tmp_path / "converted")]) == 0
    a, b = Dataset(tmp_path / "batched"), Dataset(tmp_path / "converted")
    assert sorted(a.index) == sorted(b.index)
    assert a.index["arrays"] == b.index["arrays"]
    assert [sorted(e) for e in a.episodes] == [sorted(e) for e in b.episodes]
    for key in ("start", "length", "success", "source", "wrist", "object_set"):
        assert [e[key] for e in a.episodes] == [e[key] for e in b.episodes], key
    for name, (dtype, _) in ARRAYS.items():
        assert a[name].dtype == b[name].dtype == np.dtype(dtype) and a[name].shape == b[name].shape, name
        np.testing.assert_allclose(a[name], b[name], atol=1e-6, err_msg=name)  # the very same transitions
    np.testing.assert_allclose(a["next_q"][:11], a["q"][1:12])  # contiguous rows
    assert not np.allclose(a["q"][:12], a["q"][12:24])  # two different episodes, not one repeated


def test_replay_targets_are_the_collectors_noisy_source(tmp_path):
    cfg = ndm_data.ReplayConfig(source="sine", scene="hand_only", wrist="palm_up", episodes=3, num_envs=2, steps=15,
                                reset_steps=2, settle_steps=1, seed=5, threads=1)
    ndm_data.replay_dataset(cfg, tmp_path / "ds", progress=False)
    ds = Dataset(tmp_path / "ds")
    assert len(ds.episodes) == 3 and len(ds) == 45  # the 4th episode of the second round is dropped
    source = cfg.replay_source()
    for k in range(3):
        np.testing.assert_allclose(ds["target"][ds.episode_slice(k)], source.episode(k), atol=1e-6)
    moved = np.abs(ds["next_q"][:] - ds["q"][:]).max(axis=0)
    assert moved.max() > 0.01  # the hand follows the wave


def test_chaos_box_refuses_palm_up(tmp_path):
    cfg = ndm_data.ReplayConfig(source="sine", scene="chaos_box", wrist="palm_up", episodes=1, num_envs=1, steps=2)
    with pytest.raises(ValueError, match="palm_up"):
        ndm_data.replay_dataset(cfg, tmp_path / "ds", progress=False)
    with pytest.raises(ValueError, match="replay scene"):
        ndm_data.replay_dataset(ndm_data.ReplayConfig(scene="grasp"), tmp_path / "ds2", progress=False)


def test_policy_rollouts_run_full_length_and_replay_by_wrist(tmp_path):
    """Rollouts keep running after the object falls; the Chaos Box replays them per wrist through the CLI."""
    cmd = ["ndm-data", "rollouts", "--policy", POLICY, "--world", "source", "--wrists", "thumb_up", "base_up",
           "--episodes", "4", "--num-envs", "4", "--episode-steps", "20", "--threads", "1", "--grasp-candidates", "8",
           "--out", str(tmp_path / "roll")]
    assert cli.main(cmd) == 0
    ds = Dataset(tmp_path / "roll")
    assert [e["length"] for e in ds.episodes] == [20] * 4
    assert sorted(e["wrist"] for e in ds.episodes) == ["base_up", "base_up", "thumb_up", "thumb_up"]
    np.testing.assert_array_equal(ds["target"][:], ds["base_target"][:])
    for k in range(4):
        rows = ds.episode_slice(k)
        np.testing.assert_allclose(ds["next_q"][rows][:-1], ds["q"][rows][1:])
        # a_t = clip(a_{t-1} + delta / 24): the base target moves at most 1/24 rad per step
        assert np.abs(np.diff(ds["target"][rows], axis=0)).max() <= hand.ACTION_SCALE + 1e-6
    cmd = ["ndm-data", "replay", "--source", "sim_rollouts", "--source-path", str(tmp_path / "roll"),
           "--scene", "chaos_box", "--wrist", "base_up", "--episodes", "2", "--num-envs", "2", "--steps", "10",
           "--threads", "1", "--out", str(tmp_path / "chaos")]
    assert cli.main(cmd) == 0
    chaos = Dataset(tmp_path / "chaos")
    assert [e["source"] for e in chaos.episodes] == ["chaos_box:sim_rollouts"] * 2
    replayed = [ds["base_target"][ds.episode_slice(k)][:10] for k in range(4) if ds.episodes[k]["wrist"] == "base_up"]
    for k in range(2):  # each episode replays one base_up rollout, plus the per-step noise
        diffs = [np.abs(chaos["target"][chaos.episode_slice(k)] - r).max() for r in replayed]
        assert min(diffs) < 0.06
    meta = json.loads((tmp_path / "chaos" / "index.json").read_text())["provenance"]
    assert meta["config"]["noise_sigma"] == 0.01 and meta["config"]["noise_probability"] == 0.5


def test_replay_of_a_missing_wrist_says_which_exist(tmp_path, capsys):
    write_dataset(tmp_path / "roll", [Episode(q=np.zeros((3, 16)), target=np.zeros((3, 16)), next_q=np.zeros((3, 16)),
                                              wrist=[0, 0, 0, 1], axis=[0, 0, 1], wrist_label="base_up")])
    code = cli.main(["ndm-data", "replay", "--source-path", str(tmp_path / "roll"), "--wrist", "thumb_up",
                     "--episodes", "1", "--out", str(tmp_path / "x")])
    assert code == 2 and "labels present: ['base_up']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_suite_makes_every_set_and_keeps_finished_ones(tmp_path, capsys):
    cmd = ["ndm-data", "suite", "--policy", POLICY, "--wrists", "base_up", "--rollout-episodes", "2",
           "--chaos-box-episodes", "1", "--free-hand-episodes", "1", "--wave-episodes", "1", "--ood-episodes", "1",
           "--steps", "6", "--num-envs", "2", "--grasp-candidates", "4", "--threads", "1", "--out", str(tmp_path / "s")]
    assert cli.main(cmd) == 0
    paths = ndm_data.suite_paths(tmp_path / "s", ndm_data.SuiteConfig(wrists=["base_up"]))
    assert len(paths) == 7
    for name, path in paths.items():
        ds = Dataset(path)
        assert len(ds) > 0, name
    assert {e["source"] for e in Dataset(paths["free_hand_base_up"]).episodes} == {"hand_only:sim_rollouts"}
    assert Dataset(paths["ood"]).episodes[0]["source"].startswith("target:rollout:")
    assert "new_sets=7" in capsys.readouterr().out.strip().splitlines()[-1]
    assert cli.main(cmd) == 0  # a rerun keeps what is there
    assert "new_sets=0" in capsys.readouterr().out.strip().splitlines()[-1]
