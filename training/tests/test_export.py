"""Every export is guarded by an onnxruntime-vs-PyTorch parity check and follows the contract."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from dexndm_policy import contract
from dexndm_training import export
from dexndm_training.networks import GeneralistPolicy, ResidualPolicy


def specs(session):
    return ([contract.TensorSpec(i.name, tuple(i.shape)) for i in session.get_inputs()],
            [contract.TensorSpec(o.name, tuple(o.shape)) for o in session.get_outputs()])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("models")
    gen, res = GeneralistPolicy(width=64, blocks=1), ResidualPolicy(width=64, blocks=1)
    with torch.no_grad():  # give the residual a non-zero output so parity is meaningful
        res.mlp.out.weight.normal_(0, 0.1)
    errors = {
        "generalist": export.export_policy(gen, contract.KIND_GENERALIST, out / "generalist.onnx", {"width": 64}, "untrained"),
        "residual": export.export_policy(res, contract.KIND_RESIDUAL, out / "residual.onnx", {"width": 64}, "untrained"),
    }
    return out, gen, res, errors


def test_parity_within_tolerance(exported):
    _, _, _, errors = exported
    assert errors["generalist"] < export.PARITY_TOLERANCE and errors["residual"] < export.PARITY_TOLERANCE


@pytest.mark.parametrize("kind", ["generalist", "residual"])
def test_exported_models_follow_the_contract_with_a_free_batch(exported, kind):
    out = exported[0]
    session = ort.InferenceSession(str(out / f"{kind}.onnx"), providers=["CPUExecutionProvider"])
    inputs, outputs = specs(session)
    contract.check_model(kind, session.get_modelmeta().custom_metadata_map, inputs, outputs, kind)
    for batch in (1, 7):
        result = session.run(None, export.example_inputs(kind, batch))[0]
        assert result.shape == (batch, 16)


def test_generalist_output_is_bounded_and_residual_starts_at_zero(exported):
    out, gen, res, _ = exported
    session = ort.InferenceSession(str(out / "generalist.onnx"), providers=["CPUExecutionProvider"])
    delta = session.run(None, export.example_inputs("generalist", 32))[0]
    assert np.all(np.abs(delta) <= 1.0)
    fresh = ResidualPolicy(width=32, blocks=1)
    sample = export.example_inputs("residual", 8)
    assert torch.count_nonzero(fresh(torch.from_numpy(sample["obs"]), torch.from_numpy(sample["base_target"]))) == 0


def test_contract_refuses_a_wrong_kind_layout_or_shape(exported):
    out = exported[0]
    session = ort.InferenceSession(str(out / "generalist.onnx"), providers=["CPUExecutionProvider"])
    meta = dict(session.get_modelmeta().custom_metadata_map)
    inputs, outputs = specs(session)
    with pytest.raises(contract.ModelContractError, match="kind"):
        contract.check_model("residual", meta, inputs, outputs)
    with pytest.raises(contract.ModelContractError, match="layout version"):
        contract.check_model("generalist", {**meta, contract.META_LAYOUT: "0"}, inputs, outputs)
    with pytest.raises(contract.ModelContractError, match=r"\[N, 327\]"):
        contract.check_model("generalist", meta, [contract.TensorSpec("obs", ("batch", 320))], outputs)


def test_parity_error_detects_a_graph_that_differs(exported):
    out, gen, _, _ = exported
    other = GeneralistPolicy(width=64, blocks=1)
    assert export.parity_error(other, "generalist", str(out / "generalist.onnx")) > export.PARITY_TOLERANCE


def test_a_generalist_with_motion_features_exports_with_parity_and_sees_the_steps(tmp_path):
    """The motion features are the history's steps in action units, computed inside the ONNX graph."""
    from dexndm_policy import observation
    from dexndm_training.networks import MOTION_DIM, motion_features

    obs = torch.zeros(1, observation.OBS_DIM)
    hist = obs[:, observation.HISTORY_SLICE].view(1, observation.HISTORY, observation.STEP_DIM)
    hist[0, :, 16 + 3] = torch.arange(observation.HISTORY) / 24.0  # joint 3's target climbs one full step a tick
    hist[0, -1, 3] = 0.5 / 24.0  # its newest q lags behind
    feats = motion_features(obs)
    assert feats.shape == (1, MOTION_DIM)
    steps = feats[0, : 9 * 16].view(9, 16)
    assert torch.allclose(steps[:, 3], torch.ones(9)) and torch.count_nonzero(steps[:, [0, 1, 2, 4]]) == 0
    assert feats[0, -16 + 3] == pytest.approx(9.0 - 0.5)  # tracking error a_{t-1} - q_t
    torch.manual_seed(1)
    gen = GeneralistPolicy(width=32, blocks=1, motion=True)
    gen.normalizer.fit(gen.inputs(torch.randn(64, observation.OBS_DIM) * 0.3))
    error = export.export_policy(gen, contract.KIND_GENERALIST, tmp_path / "g.onnx", {"motion": True}, "test")
    assert error < export.PARITY_TOLERANCE


def test_make_default_models_command_writes_an_untrained_pair_the_policy_runtime_runs(tmp_path, capsys):
    """`dexndm-train make-default-models` (moved here from dexndm_policy, which must not import training)."""
    import json

    from dexndm_description import hand
    from dexndm_policy.runtime import OnnxPolicyModel
    from dexndm_training import cli

    assert cli.main(["make-default-models", "--out", str(tmp_path), "--width", "32", "--seed", "3"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert set(dict(kv.split("=") for kv in line.split())) == {"generalist_kb", "generalist_parity", "residual_kb",
                                                                "residual_parity"}
    obs = export.example_inputs("generalist", 4)["obs"]
    base = np.tile(hand.CANONICAL_POSE.astype(np.float32), (4, 1))
    delta = OnnxPolicyModel(tmp_path / "generalist.onnx", "generalist")(obs)
    residual = OnnxPolicyModel(tmp_path / "residual.onnx", "residual")(obs, base)
    assert delta.shape == (4, 16) and np.std(delta) > 0 and np.all(np.abs(delta) <= 1.0)
    assert np.all(residual == 0.0)  # an untrained residual changes nothing
    for kind in ("generalist", "residual"):
        config = json.loads((tmp_path / f"{kind}.json").read_text())
        assert config["trained"] is False and config["width"] == 32 and config["made_by"] == "dexndm-train make-default-models"
        assert config["parity_error"] < export.PARITY_TOLERANCE
    with pytest.raises(SystemExit):  # no default --out: the shipped, trained models are never overwritten by accident
        cli.main(["make-default-models"])
