"""The pipeline end to end on tiny settings: collect -> BC -> ONNX export -> evaluation, through the CLI."""
import json

import numpy as np
import onnxruntime as ort
import pytest

from dexndm_policy import contract
from dexndm_training import cli, evaluate
from dexndm_training.dataset import Dataset

#: Tiny worlds; 8 grasp candidates (EnvConfig tries 128): the cache only has to hold the object, and building
#: it was the biggest cost of these runs.
ENV = ["--num-envs", "6", "--episode-steps", "15", "--threads", "1", "--grasp-candidates", "8"]


def test_collect_keeps_only_full_episodes_with_their_labels(tmp_path, capsys):
    out = tmp_path / "data"
    assert cli.main(["collect", "--policy", "zero", "--episodes", "4", "--out", str(out), *ENV,
                     "--axes", "principal"]) == 0
    ds = Dataset(out)
    assert len(ds.episodes) == 4 and all(e["success"] and e["length"] == 15 for e in ds.episodes)
    assert {e["object_set"] for e in ds.episodes} == {"normal_cylinder"}
    assert {e["wrist"] for e in ds.episodes} == {"palm_up"}
    np.testing.assert_allclose(np.linalg.norm(ds["axis"], axis=1), 1.0, atol=1e-6)
    # Zero action holds the base target at the reset pose, and next_q is the following row's q.
    s = ds.episode_slice(0)
    np.testing.assert_allclose(ds["base_target"][s], np.repeat(ds["q"][s][:1], 15, axis=0), atol=1e-6)
    np.testing.assert_allclose(ds["next_q"][s][:-1], ds["q"][s][1:], atol=1e-6)
    assert "kept=4" in capsys.readouterr().out


def test_bc_export_and_evaluate_through_the_cli(tmp_path, capsys):
    data = tmp_path / "data"
    cli.main(["collect", "--policy", "zero", "--episodes", "3", "--out", str(data), *ENV])
    assert cli.main(["bc", "--datasets", str(data), "--out", str(tmp_path / "bc"), "--width", "32", "--blocks", "1",
                     "--epochs", "2", "--device", "cpu"]) == 0
    onnx_path = tmp_path / "generalist.onnx"
    assert cli.main(["export", "--checkpoint", str(tmp_path / "bc" / "generalist.pt"), "--out", str(onnx_path)]) == 0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta[contract.META_CONFIG])["width"] == 32
    beside = json.loads((tmp_path / "generalist.json").read_text())
    assert beside["width"] == 32 and beside["trained"] is True and beside["parity_error"] < 1e-4
    capsys.readouterr()
    assert cli.main(["evaluate", "--policy", str(onnx_path), "--episodes", "3", "--episode-steps", "15",
                     "--threads", "1", "--json", str(tmp_path / "eval.json")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split())
    assert list(fields) == ["rot_rad", "ttf", "rotp", "baseline_rot_rad", "baseline_ttf", "baseline_rotp", "episodes"]
    assert fields["episodes"] == "3" and 0.0 <= float(fields["ttf"]) <= 1.0
    assert json.loads((tmp_path / "eval.json").read_text())["condition"]["axis"] == "z"


def test_zero_policy_is_its_own_baseline_and_the_grid_writes_table_json_plot(tmp_path):
    from dexndm_training.rollout import zero_policy

    rows = evaluate.evaluate_grid(zero_policy, objects=["normal_cylinder", "test_irregular"], wrists=["thumb_up"],
                                  axis_sets=["principal", "diagonal"], episodes=2, episode_steps=10, threads=1,
                                  progress=False)
    assert len(rows) == 4 and any(r["policy"]["ttf"] < 1 for r in rows) and {r["split"] for r in rows} == {"train", "test"}
    for r in rows:  # same seeds, same actions: identical figures, finite even where objects fell
        assert all(np.isfinite(v) for v in r["policy"].values())
        assert r["policy"]["rot"] == pytest.approx(r["baseline"]["rot"]) and r["policy"]["ttf"] == r["baseline"]["ttf"]
    paths = evaluate.write_report(rows, tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert set(saved["summary"]["axis_set"]) == {"principal", "diagonal"}
    assert paths["plot"].stat().st_size < 300_000 and paths["table"].read_text().count("\n") == 6


def test_cli_errors_say_what_to_do(tmp_path, capsys):
    assert cli.main(["bc", "--datasets", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "dataset directory" in capsys.readouterr().err
    assert cli.main(["ppo", "--specialist", "teapot", "--run-dir", str(tmp_path / "r")]) == 2
    assert "normal_cylinder" in capsys.readouterr().err
    assert cli.main(["collect", "--policy", str(tmp_path / "no_run"), "--out", str(tmp_path / "d"), *ENV]) == 2
    assert "PPO run directory" in capsys.readouterr().err
    (tmp_path / "empty_run").mkdir()
    assert cli.main(["collect", "--policy", str(tmp_path / "empty_run"), "--out", str(tmp_path / "d"), *ENV]) == 2
    assert "no model_*.pt checkpoint" in capsys.readouterr().err
