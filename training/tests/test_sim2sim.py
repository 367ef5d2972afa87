"""The sim2sim study end to end on a tiny configuration: every stage, the report, the last line, the cache."""
import json
import math
from pathlib import Path

import pytest

from dexndm_training import cli, sim2sim

POLICY = Path(__file__).resolve().parents[2] / "src" / "dexndm_policy" / "models" / "generalist.onnx"
TINY = ["rollout_episodes=2", "ood_episodes=2", "chaos_episodes=1,2", "noiseless_episodes=1", "free_hand_episodes=2",
        "wave_episodes=1", "eval_episodes=2", "steps=24", "num_envs=4", "hidden=8", "dyn_epochs=1", "dyn_max_batches=2",
        "residual_epochs=1", "residual_max_batches=2", "residual_width=16", "sysid_population=4",
        "sysid_iterations=1", "eval_wrists=palm_up", "axis_sets=z"]
KEYS = ["direct_rot_rad", "dexndm_rot_rad", "direct_ttf", "dexndm_ttf", "direct_track_err", "dexndm_track_err",
        "jointwise_ood_err", "wholehand_ood_err"]


def test_tiny_study_writes_its_report_prints_its_line_and_reuses_its_cache(tmp_path, capsys):
    run, docs = tmp_path / "run", tmp_path / "docs"
    args = ["sim2sim", "--quick", "--policy", str(POLICY), "--run-dir", str(run), "--docs-dir", str(docs), "--set", *TINY]
    assert cli.main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split())
    assert list(fields) == KEYS
    values = {k: float(v) for k, v in fields.items()}
    assert all(math.isfinite(v) for v in values.values())
    assert values["direct_track_err"] > 0 and values["jointwise_ood_err"] > 0 and 0 <= values["direct_ttf"] <= 1

    report = json.loads((docs / "sim2sim.json").read_text())
    assert set(report["summary"]["per_method"]) == {"source", *sim2sim.METHODS}
    assert set(report["conditions"]) == {"palm_up/z"}
    assert report["summary"]["headline"]["dexndm_track_err"] == pytest.approx(float(fields["dexndm_track_err"]), abs=1e-5)
    table = (docs / "sim2sim.md").read_text()
    for name in sim2sim.METHOD_NAMES.values():
        assert name in table
    assert "Data scaling" in table and "| 2 |" in table
    for png in ("sim2sim_methods.png", "sim2sim_scaling.png", "sim2sim_tracking.png"):
        assert (docs / png).read_bytes()[:4] == b"\x89PNG"
    for cached in ("data/chaos_box_thumb_up", "models/joint_chaos_n1/dynamics.pt", "methods/uan/compensator.pt",
                   "methods/dexndm/residual.pt", "sysid/sysid.json", "eval/palm_up_z.json", "eval/ood.json"):
        assert (run / cached).exists(), cached

    # a rerun finds everything cached: same figures, nothing retrained
    stamp = (run / "models/joint_chaos_n1/dynamics.pt").stat().st_mtime_ns
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == last
    assert (run / "models/joint_chaos_n1/dynamics.pt").stat().st_mtime_ns == stamp

    # other settings in the same run directory are refused, with what to do
    with pytest.raises(ValueError, match="other settings"):
        sim2sim.Study(sim2sim.override(sim2sim.QUICK, [*TINY, "eval_episodes=3", f"policy={POLICY}"]), run)


def test_bad_overrides_are_refused():
    with pytest.raises(ValueError, match="expected name=value"):
        sim2sim.override(sim2sim.QUICK, ["no_such_field=1"])
    with pytest.raises(ValueError, match="chaos_episodes"):
        sim2sim.Study(sim2sim.override(sim2sim.QUICK, ["chaos_episodes=0"]), "/tmp/unused")
