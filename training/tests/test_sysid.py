"""System identification: known perturbed gains are recovered, the sysid-ed world is what was searched, resume."""
import json

import numpy as np
import pytest

from dexndm_description import hand
from dexndm_description.worlds import WorldConfig
from dexndm_training import cli, sysid

PERTURBED_UP, PERTURBED_DOWN = [1, 6, 13], [10]  # Kp x1.5 on if_mcp, mf_pip, th_axl; x0.7 on rf_pip
SMALL_PROBE = sysid.ProbeConfig(square_ticks=20, sine_ticks=20, whole_hand_ticks=20)
SMALL = sysid.SysIdConfig(wrists=("palm_up",), population=32, iterations=12, probe=SMALL_PROBE)


def perturbed_world() -> WorldConfig:
    kp = hand.SIM_KP.copy()
    kp[PERTURBED_UP] *= 1.5
    kp[PERTURBED_DOWN] *= 0.7
    return WorldConfig.source().replace(name="perturbed", pd_kp=kp)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sysid")
    result = sysid.identify(out, reference=perturbed_world(), cfg=SMALL, threads=2, progress=False)
    return out, result


def test_recovers_known_perturbed_gains_and_lowers_the_match_error(run):
    _, result = run
    truth = perturbed_world()
    kp = np.asarray(result["identified"]["pd_kp"])
    kd = np.asarray(result["identified"]["pd_kd"])
    moved = PERTURBED_UP + PERTURBED_DOWN
    np.testing.assert_allclose(kp / truth.pd_kp, 1.0, atol=0.1)  # every joint, the perturbed ones included
    np.testing.assert_allclose(kd / truth.pd_kd, 1.0, atol=0.1)
    np.testing.assert_allclose(result["identified"]["link_mass_scale"], 1.0, atol=0.15)
    assert result["err_after_rad"] < 0.15 * result["err_before_rad"]
    before, after = np.asarray(result["per_joint_err_before_rad"]), np.asarray(result["per_joint_err_after_rad"])
    assert np.all(after[moved] < 0.3 * before[moved])
    assert result["candidates"] == SMALL.population * SMALL.iterations and result["reference_self_contact_ticks"] == 0
    assert "if_mcp" in sysid.table(result) and "mrad after" in sysid.table(result)


def test_the_sysid_world_reproduces_the_searched_match(run):
    out, result = run
    world = sysid.identified_world(out)
    assert world.actuation == "pd_torque" and world.name == "sysid"
    np.testing.assert_allclose(world.pd_kp, result["identified"]["pd_kp"])
    saved = np.load(out / sysid.REFERENCE_FILE)
    err = sysid.joint_errors(sysid.record_probe(world, saved["targets"], SMALL.wrists), saved["q"])
    np.testing.assert_allclose(err, result["per_joint_err_after_rad"], atol=1e-9)


def test_direct_model_edits_match_the_world_config_path():
    """CandidateWorlds writes gains and masses into MjModels; WorldConfig puts them in the MJCF: same physics
    (to ~2e-4 rad: mj_setConst's constraint weights differ slightly from the compiler's at joint limits)."""
    targets, _ = sysid.probe_targets(sysid.ProbeConfig(square_ticks=4, sine_ticks=4, whole_hand_ticks=4))
    params = sysid.start_parameters(WorldConfig.source())
    params = np.stack([params, params * np.array([[1.4], [0.6], [2.0]])])
    worlds = sysid.CandidateWorlds(WorldConfig.source(), 2, ["base_up"], threads=1)
    try:
        q = worlds.simulate(params, targets)
    finally:
        worlds.close()
    for k in range(2):
        world = sysid.parameters_world(WorldConfig.source(), params[k])
        np.testing.assert_allclose(q[k], sysid.record_probe(world, targets, ["base_up"], threads=1), atol=1e-3)
    assert np.abs(q[0] - q[1]).max() > 0.01  # the edits do change the physics


def test_resume_extends_the_search_and_refuses_other_settings(run):
    out, result = run
    again = sysid.identify(out, reference=perturbed_world(), cfg=SMALL, progress=False)
    assert again["candidates"] == result["candidates"] and again["identified"] == result["identified"]
    longer = sysid.SysIdConfig(**{**SMALL.__dict__, "iterations": SMALL.iterations + 1})
    more = sysid.identify(out, reference=perturbed_world(), cfg=longer, progress=False)
    assert more["candidates"] == result["candidates"] + SMALL.population
    assert len(json.loads((out / sysid.HISTORY_FILE).read_text())) == SMALL.iterations + 1
    assert more["err_after_rad"] <= result["err_after_rad"] + 1e-12  # the best is kept
    other = sysid.SysIdConfig(**{**longer.__dict__, "population": 16})
    with pytest.raises(ValueError, match="other settings"):
        sysid.identify(out, reference=perturbed_world(), cfg=other, progress=False)
    with pytest.raises(ValueError, match="another reference world"):
        sysid.identify(out, reference="target", cfg=longer, progress=False)


def test_the_default_probe_keeps_the_fingers_apart_in_both_worlds():
    """Fingers that touch are coupled; the probe moves neighbours in parallel and rests the thumb aside."""
    cfg = sysid.SysIdConfig()
    targets, segments = sysid.probe_targets(cfg.probe)
    assert len(targets) == cfg.probe.ticks() == 380 and [s[0] for s in segments][:2] == ["square slot 0", "sine slot 0"]
    assert hand.within_limits(targets)
    for world in ("target", "source"):
        q = sysid.record_probe(world, targets, cfg.wrists)
        assert sysid.self_contact_ticks(world, q) == 0, world
    scissor = np.tile(hand.MID, (3, 1))
    scissor[:, 0], scissor[:, 4] = 0.9, -0.9  # index and middle abducted into each other
    assert sysid.self_contact_ticks("target", scissor) == 3  # the check does see contact


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="population must be >= 4"):
        sysid.SysIdConfig(population=2)
    with pytest.raises(ValueError, match="unknown wrist"):
        sysid.SysIdConfig(wrists=("sideways",))
    with pytest.raises(ValueError, match="at least one probe wrist"):
        sysid.SysIdConfig(wrists=())
    with pytest.raises(ValueError, match="pd_torque"):
        sysid.CandidateWorlds(WorldConfig.target(), 4, ["palm_up"])
    with pytest.raises(ValueError, match="NaN"):
        sysid.record_probe("source", np.full((5, 16), np.nan), ["palm_up"])
    with pytest.raises(FileNotFoundError, match="dexndm-train sysid"):
        sysid.identified_world(tmp_path)
    (tmp_path / sysid.RESULT_FILE).write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(ValueError, match="not a sysid result"):
        sysid.identified_world(tmp_path)
    with pytest.raises(ValueError, match="link_mass_scale must be positive"):
        WorldConfig.source().replace(link_mass_scale=np.zeros(16))
    assert cli.main(["sysid", "--out", str(tmp_path / "x"), "--population", "2"]) == 2  # the command line says it too
    assert "population must be >= 4" in capsys.readouterr().err
