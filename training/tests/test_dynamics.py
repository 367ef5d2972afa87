"""The joint-wise dynamics model: batched groups, row independence, learning known laws, fine-tuning, export."""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dexndm_description import hand
from dexndm_training import cli, dynamics
from dexndm_training.dataset import Dataset, Episode, write_dataset
from dexndm_training.dynamics import DynamicsConfig, DynamicsModel, example_histories

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_dynamics import GAINS, write_law  # noqa: E402

W = 10


def test_batched_groups_equal_separate_networks():
    """One batched product over the groups gives what 16 separate per-joint MLPs give."""
    torch.manual_seed(0)
    model = DynamicsModel(W, "joint", hidden=(8, 8))
    hist = torch.from_numpy(example_histories(5, W))
    feats = (model.features(hist) - model.in_mean) / model.in_std
    for i in range(hand.NUM_JOINTS):
        x = feats[:, i]
        for layer in model.layers:
            x = torch.nn.functional.elu(x @ layer.weight[i] + layer.bias[i])
        delta = x @ model.head.weight[i] + model.head.bias[i]
        want = hist[:, i, -1, 0] + model.out_mean[i] + model.out_std[i] * delta[:, 0]
        torch.testing.assert_close(model(hist)[:, i], want)


@pytest.mark.parametrize("grouping", ["joint", "finger", "hand"])
def test_joint_i_depends_on_the_rows_its_grouping_allows(grouping):
    torch.manual_seed(1)
    model = DynamicsModel(W, grouping, hidden=(16,))
    torch.nn.init.normal_(model.head.weight, std=1.0)  # make every input matter
    hist = torch.from_numpy(example_histories(8, W))
    base = model(hist)
    for j in range(hand.NUM_JOINTS):
        moved = hist.clone()
        moved[:, j] += torch.randn(8, W, 2) * 0.3  # joint j's whole history changes
        changed = (model(moved) - base).abs().max(0).values > 1e-6
        if grouping == "joint":
            allowed = np.arange(16) == j
        elif grouping == "finger":
            allowed = hand.FINGER_OF_JOINT == hand.FINGER_OF_JOINT[j]
        else:
            allowed = np.ones(16, dtype=bool)
        np.testing.assert_array_equal(changed.numpy(), allowed, err_msg=f"perturbing joint {j}")


def fit(tmp_path, name, datasets, **kwargs):
    cfg = DynamicsConfig(datasets=[str(d) for d in datasets], hidden=[32, 32], epochs=25, batch_size=128, lr=1e-2,
                         **kwargs)
    return dynamics.train_dynamics(cfg, tmp_path / name, progress=False)


def test_joint_wise_model_fits_a_per_joint_first_order_law(tmp_path):
    write_law(tmp_path / "law", episodes=40, length=60)
    _, report = fit(tmp_path, "dyn", [tmp_path / "law"])
    ev = report["eval"]
    assert ev["mae"] < 0.1 * ev["zero_delta_mae"], ev  # far better than predicting no motion
    assert report["initial_eval"]["mae"] > 3 * ev["mae"]
    per_joint = np.array(report["per_joint_eval_mae"])
    assert per_joint.max() < 0.3 * ev["zero_delta_mae"]  # every joint learned its own gain
    assert (tmp_path / "dyn" / "dynamics.pt").is_file() and (tmp_path / "dyn" / "dynamics_report.json").is_file()


def test_fine_tuning_on_target_data_beats_the_pretrained_model_on_the_target(tmp_path):
    write_law(tmp_path / "source", episodes=40, length=60, seed=1)
    # the target world: half the gains and one step of delay; only a little data of it
    write_law(tmp_path / "target", episodes=12, length=60, gains=0.5 * GAINS, delay=1, seed=2)
    write_law(tmp_path / "target_test", episodes=8, length=60, gains=0.5 * GAINS, delay=1, seed=3)
    pre, _ = fit(tmp_path, "pre", [tmp_path / "source"])
    tuned, _ = fit(tmp_path, "tuned", [tmp_path / "target"], init=str(tmp_path / "pre" / "dynamics.pt"))
    before = dynamics.evaluate_dynamics(pre, [str(tmp_path / "target_test")])["mae"]
    after = dynamics.evaluate_dynamics(tuned, [str(tmp_path / "target_test")])["mae"]
    assert after < 0.5 * before, (before, after)
    saved = torch.load(tmp_path / "tuned" / "dynamics.pt", weights_only=False)
    assert [e["role"] for e in saved["fitted_on"]] == ["pretrain", "finetune"]
    torch.testing.assert_close(tuned.in_mean, pre.in_mean)  # the pretrained normalizer is kept


def test_a_stopped_run_resumes_to_the_same_model(tmp_path):
    write_law(tmp_path / "law", episodes=10, length=30)
    cfg = DynamicsConfig(datasets=[str(tmp_path / "law")], hidden=[8], epochs=4, batch_size=64)
    straight, _ = dynamics.train_dynamics(cfg, tmp_path / "a", progress=False)

    def crash(epoch, entry):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dynamics.train_dynamics(cfg, tmp_path / "b", progress=False, on_epoch=crash)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["state"]["epoch"] == 2
    resumed, report = dynamics.train_dynamics(cfg, tmp_path / "b", progress=False)
    assert len(report["history"]) == 4
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)
    with pytest.raises(ValueError, match="other settings"):
        dynamics.train_dynamics(DynamicsConfig(**{**cfg.to_dict(), "lr": 0.5}), tmp_path / "b", progress=False)


def test_export_parity_metadata_and_row_independence_in_onnx(tmp_path):
    write_law(tmp_path / "law", episodes=6, length=30)
    fit_cfg = DynamicsConfig(datasets=[str(tmp_path / "law")], hidden=[16], epochs=1, batch_size=64)
    model, _ = dynamics.train_dynamics(fit_cfg, tmp_path / "dyn", progress=False)
    out = tmp_path / "dynamics.onnx"
    assert cli.main(["dynamics-export", "--model", str(tmp_path / "dyn"), "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "history" and inp.shape[1:] == [16, W, 2] and not isinstance(inp.shape[0], int)
    assert outp.name == "next_q" and outp.shape[1:] == [16]
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["dexndm_kind"] == "dynamics" and meta["dexndm_window"] == "10" and meta["dexndm_grouping"] == "joint"
    assert meta["dexndm_joint_names"].split(",") == list(hand.JOINT_NAMES)
    fitted = json.loads(meta["dexndm_fitted_on"])
    assert fitted[0]["role"] == "pretrain" and fitted[0]["datasets"][0].endswith("law")
    ranges = json.loads(meta["dexndm_input_ranges"])
    ds = Dataset(tmp_path / "law")
    train_ids, _ = ds.split_episodes(0.1, 0)
    rows = np.concatenate([np.arange(ds.episode_slice(i).start, ds.episode_slice(i).stop) for i in train_ids])
    for key, name in (("position", "q"), ("target", "target")):  # the per-joint ranges of the training rows
        np.testing.assert_allclose(np.array(ranges[key]), np.stack([ds[name][rows].min(0), ds[name][rows].max(0)], 1),
                                   atol=1e-6)
    from dexndm_policy.gap_monitor import DynamicsModel as RuntimeModel  # the live monitor accepts the export

    assert RuntimeModel(out).window == W
    hist = example_histories(32, W, seed=7)
    got = session.run(None, {"history": hist})[0]
    np.testing.assert_allclose(got, model(torch.from_numpy(hist)).detach().numpy(), atol=1e-5)
    moved = hist.copy()
    moved[:, 1:] += 0.1  # every joint but 0 changes
    np.testing.assert_array_equal(session.run(None, {"history": moved})[0][:, 0], got[:, 0])


def test_bad_inputs_get_clear_errors(tmp_path):
    model = DynamicsModel(W)
    with pytest.raises(ValueError, match=r"history must be \[N, 16, 10, 2\]"):
        model(torch.zeros(3, 16, 5, 2))
    with pytest.raises(FileNotFoundError, match="index.json"):
        dynamics.load_windows([str(tmp_path / "missing")], W)
    with pytest.raises(FileNotFoundError, match="dexndm-train dynamics"):
        dynamics.load_dynamics(tmp_path / "nothing.pt")
    q = np.zeros((5, 16))
    q[2, 3] = np.nan
    write_dataset(tmp_path / "nan", [Episode(q=q, target=np.zeros((5, 16)), next_q=np.zeros((5, 16)),
                                             wrist=[0, 0, 0, 1], axis=[0, 0, 1])])
    with pytest.raises(ValueError, match="NaN"):
        dynamics.load_windows([str(tmp_path / "nan")], W)
    with pytest.raises(ValueError, match="grouping"):
        DynamicsModel(W, "elbow")
    assert cli.main(["dynamics", "--datasets", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def test_windows_repeat_the_first_row_before_an_episode_starts(tmp_path):
    write_law(tmp_path / "law", episodes=2, length=6)
    data = dynamics.load_windows([str(tmp_path / "law")], 4, split=False)["all"]
    hist = data.history(torch.tensor([0, 2, 6, 7]))  # rows 6, 7 are the second episode's first two
    ds = Dataset(tmp_path / "law")
    q = torch.as_tensor(np.array(ds["q"]))
    torch.testing.assert_close(hist[0, :, :, 0], q[[0, 0, 0, 0]].T)
    torch.testing.assert_close(hist[1, :, :, 0], q[[0, 0, 1, 2]].T)
    torch.testing.assert_close(hist[3, :, :, 0], q[[6, 6, 6, 7]].T)
    torch.testing.assert_close(hist[1, :, :, 1], torch.as_tensor(np.array(ds["target"]))[[0, 0, 1, 2]].T)


def test_a_subset_of_episodes_for_data_scaling(tmp_path):
    write_law(tmp_path / "law", episodes=10, length=5)
    ds = Dataset(tmp_path / "law")
    a = dynamics.choose_episodes(ds, True, max_episodes=4, seed=3)
    b = dynamics.choose_episodes(ds, True, max_episodes=4, seed=3)
    assert len(a["train"]) == 3 and len(a["eval"]) == 1 and not set(a["train"]) & set(a["eval"])
    assert all(np.array_equal(a[k], b[k]) for k in a)  # seeded
    small = dynamics.load_windows([str(tmp_path / "law")], W, max_episodes=4, seed=3)
    assert len(small["train"]) == 15 and len(small["eval"]) == 5
    assert set(dynamics.choose_episodes(ds, False, max_episodes=6)["all"]) < set(range(10))


def test_episodes_filtered_by_wrist(tmp_path):
    episodes = [Episode(q=np.zeros((4, 16)), target=np.zeros((4, 16)), next_q=np.zeros((4, 16)), wrist=[0, 0, 0, 1],
                        axis=[0, 0, 1], wrist_label=w) for w in ("thumb_up", "base_up", "thumb_up")]
    write_dataset(tmp_path / "ds", episodes)
    ds = Dataset(tmp_path / "ds")
    np.testing.assert_array_equal(dynamics.choose_episodes(ds, False, wrists=("thumb_up",))["all"], [0, 2])
    with pytest.raises(ValueError, match=r"labels present: \['base_up', 'thumb_up'\]"):
        dynamics.choose_episodes(ds, True, wrists=("palm_up",))
