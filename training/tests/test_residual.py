"""The residual policy: trained through a frozen model it closes a known gap; bounded; contract export."""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from dexndm_description import hand
from dexndm_policy import contract, runtime
from dexndm_training import bc, cli, residual
from dexndm_training.dataset import Dataset
from dexndm_training.dynamics import DynamicsModel, load_windows
from dexndm_training.networks import ResidualPolicy
from dexndm_training.residual import ResidualConfig, load_residual_data

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_dynamics import GAINS, KnownLaw, write_law  # noqa: E402


def test_observations_are_the_robots_history_layout(tmp_path):
    write_law(tmp_path / "law", episodes=2, length=14)
    data = load_residual_data([str(tmp_path / "law")], 10, split=False)["all"]
    ds = Dataset(tmp_path / "law")
    for k in range(2):
        rows = ds.episode_slice(k)
        take = {n: np.asarray(ds[n][rows])[None] for n in ("q", "base_target", "wrist", "axis")}
        want, _ = bc.episode_observations(take["q"], take["base_target"], take["wrist"], take["axis"])
        got = data.observations(torch.arange(rows.start, rows.stop))
        np.testing.assert_allclose(got.numpy(), want[0], atol=1e-6)


def test_residual_through_a_known_model_closes_the_one_step_gap(tmp_path):
    """Source: q' = q + k (a - q); target (the frozen model): q' = q + k/1.5 (a - q). The residual must learn
    to send 1.5 x the source's step, r = 0.5 (a - q), so the target takes the source's step."""
    write_law(tmp_path / "source", episodes=30, length=40, spread=0.25)
    target = KnownLaw(GAINS / 1.5)
    cfg = ResidualConfig(datasets=[str(tmp_path / "source")], width=64, blocks=1, epochs=20, batch_size=64, lr=3e-3,
                         residual_l2=0.0, q_noise=0.0, max_residual=0.4)
    policy, report = residual.train_residual(cfg, tmp_path / "res", dynamics=target, progress=False)
    zero, trained = report["zero_residual_eval"]["mae"], report["eval"]["mae"]
    assert trained < 0.4 * zero, (zero, trained)  # held-out episodes
    # where the gap is large (a target step), the learned correction is the analytic one
    data = load_residual_data([str(tmp_path / "source")], 10, split=False)["all"]
    rows = torch.arange(len(data))
    with torch.no_grad():
        r = policy(data.observations(rows), data.base[rows])
    want = 0.5 * (data.base[rows] - data.windows.q[rows])
    big = want.abs() > 0.05
    assert big.sum() > 500 and torch.mean((r - want)[big].abs()) < 0.15 * torch.mean(want[big].abs())


def test_gradients_reach_every_target_of_the_window(tmp_path):
    write_law(tmp_path / "law", episodes=2, length=30)
    data = load_residual_data([str(tmp_path / "law")], 10, split=False)["all"]
    torch.manual_seed(0)
    model = DynamicsModel(10, "joint", hidden=(16,))
    torch.nn.init.normal_(model.head.weight)
    policy = ResidualPolicy(width=16, blocks=1)
    torch.nn.init.normal_(policy.mlp.out.weight, std=0.1)
    hist, res = residual.corrected_window(policy, data, torch.arange(12, 20))
    res.retain_grad()
    model(hist).sum().backward()
    per_step = res.grad.abs().sum(dim=(0, 2))  # [W]
    assert torch.all(per_step > 0), per_step


def test_the_residual_is_bounded():
    policy = ResidualPolicy(width=16, blocks=1, max_residual=0.1)
    torch.nn.init.normal_(policy.mlp.out.weight, std=100.0)
    out = policy(torch.randn(64, 327) * 50, torch.randn(64, 16) * 50)
    assert out.abs().max() <= 0.1 + 1e-6 and out.abs().max() > 0.09


def test_cli_pipeline_dynamics_finetune_residual_export_runs_in_the_runtime(tmp_path):
    write_law(tmp_path / "source", episodes=8, length=30, seed=1)
    write_law(tmp_path / "target", episodes=4, length=30, gains=GAINS / 1.5, seed=2)
    common = ["--hidden", "16", "--epochs", "2", "--batch-size", "64"]
    assert cli.main(["dynamics", "--datasets", str(tmp_path / "source"), "--out", str(tmp_path / "pre"), *common]) == 0
    assert cli.main(["dynamics", "--datasets", str(tmp_path / "target"), "--init", str(tmp_path / "pre"),
                     "--out", str(tmp_path / "dyn"), "--epochs", "2", "--batch-size", "64",
                     "--export", str(tmp_path / "dynamics.onnx")]) == 0
    onnx_path = tmp_path / "residual.onnx"
    assert cli.main(["residual", "--datasets", str(tmp_path / "source"), "--dynamics", str(tmp_path / "dyn"),
                     "--out", str(tmp_path / "res"), "--width", "16", "--blocks", "1", "--epochs", "1",
                     "--export", str(onnx_path)]) == 0
    model = runtime.OnnxPolicyModel(onnx_path, contract.KIND_RESIDUAL)  # the runtime's contract check
    meta = model.metadata
    config = json.loads(meta[contract.META_CONFIG])
    assert config["trained"] is True and config["max_residual"] == 0.2
    assert [e["role"] for e in config["dynamics"]["fitted_on"]] == ["pretrain", "finetune"]
    assert str(tmp_path / "source") in meta[contract.META_DATA] and str(tmp_path / "dyn") in meta[contract.META_DATA]
    assert json.loads((tmp_path / "residual.json").read_text())["parity_error"] < 1e-4
    dyn_meta = {p.key: p.value for p in onnx.load(str(tmp_path / "dynamics.onnx")).metadata_props}
    assert [e["role"] for e in json.loads(dyn_meta["dexndm_fitted_on"])] == ["pretrain", "finetune"]
    policy = runtime.PolicyRuntime(residual_path=onnx_path, axis="z", wrist="palm_down")
    out = policy.step(hand.CANONICAL_POSE)
    np.testing.assert_allclose(out.executed_target, hand.clip_to_limits(out.base_target + out.residual))
    assert np.all(np.abs(out.residual) <= 0.2 + 1e-6)


def test_bad_inputs_get_clear_errors(tmp_path):
    write_law(tmp_path / "law", episodes=2, length=10)
    with pytest.raises(ValueError, match="--dynamics"):
        residual.train_residual(ResidualConfig(datasets=[str(tmp_path / "law")]), tmp_path / "r", progress=False)
    with pytest.raises(FileNotFoundError, match="dexndm-train dynamics"):
        residual.train_residual(ResidualConfig(datasets=[str(tmp_path / "law")], dynamics=str(tmp_path / "none.pt")),
                                tmp_path / "r", progress=False)
    with pytest.raises(FileNotFoundError, match="dexndm-train residual"):
        residual.load_residual(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no datasets"):
        load_windows([], 10)
