"""bench-dynamics: the batched model and the per-joint loops train the same networks; the CLI's last line."""
import json
import statistics

import numpy as np
import pytest
import torch

from dexndm_training import cli
from dexndm_training.dynamics_bench import BenchConfig, make_paths


def test_all_paths_start_from_the_same_networks_and_train_alike():
    cfg = BenchConfig(hidden=[8, 8], batch_size=16, samples=300)
    paths = make_paths(cfg)
    x, y = paths["batched"].x[:40], paths["batched"].y[:40]
    with torch.no_grad():
        grouped = paths["batched"].module.network(x)[..., 0]
        for name in ("loop", "fused_loop"):
            separate = torch.stack([net(x[:, j])[:, 0] for j, net in enumerate(paths[name].module)], dim=1)
            torch.testing.assert_close(separate, grouped)  # same initial weights, same outputs
    for trainer in paths.values():
        trainer.steps(6)
    curves = {name: np.array(t.losses) for name, t in paths.items()}
    assert curves["batched"][-1] < curves["batched"][0]  # it learns
    for name in ("loop", "fused_loop"):
        np.testing.assert_allclose(curves[name], curves["batched"], rtol=1e-4)  # same updates, step by step
    moved = paths["batched"].module.head.weight.detach()[3, :, 0]
    np.testing.assert_allclose(paths["loop"].module[3][-1].weight.detach()[0].numpy(), moved.numpy(), atol=1e-5)
    assert y.shape == (40, 16)


def test_cli_last_line(tmp_path, capsys):
    assert cli.main(["bench-dynamics", "--hidden", "8", "--batch-size", "8", "--steps", "2", "--repeats", "3",
                     "--warmup", "1", "--samples", "200", "--json", str(tmp_path / "bench.json")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split())
    assert list(fields) == ["batched_samples_per_s", "loop_samples_per_s", "speedup"]
    rates = {k: float(v) for k, v in fields.items()}
    assert rates["batched_samples_per_s"] > 0 and rates["loop_samples_per_s"] > 0
    # The figures' arithmetic on the rates this run measured (the JSON keeps every repeat), not a band on how
    # the timings of a loaded machine relate: medians of the rates, and the median of the per-repeat ratios.
    measured = json.loads((tmp_path / "bench.json").read_text())["rates"]
    assert len(measured["batched"]) == len(measured["loop"]) == 3
    assert fields["batched_samples_per_s"] == f"{statistics.median(measured['batched']):.0f}"
    assert fields["loop_samples_per_s"] == f"{statistics.median(measured['loop']):.0f}"
    ratios = [b / lo for b, lo in zip(measured["batched"], measured["loop"])]
    assert fields["speedup"] == f"{statistics.median(ratios):.2f}"


def test_bad_settings_are_refused():
    from dexndm_training.dynamics_bench import run_bench

    with pytest.raises(ValueError, match="steps, repeats"):
        run_bench(BenchConfig(steps=0, samples=50))
