"""Behaviour cloning on a synthetic dataset whose expert is a known function of the observation."""
import json

import numpy as np
import pytest
import torch

from dexndm_description import hand
from dexndm_policy import observation
from dexndm_training import bc
from dexndm_training.dataset import Episode, write_dataset


def expert(q, previous, axis):
    """A smooth, never-settling law of (q_t, a_{t-1}, axis): each joint driven by its neighbour's angle."""
    return np.tanh(1.5 * np.sin(2.0 * np.roll(q, 1) + axis[2]) + 3.0 * (previous - q))


def synthetic_episodes(n, length=60, seed=0):
    rng = np.random.default_rng(seed)
    episodes = []
    for e in range(n):
        axis = np.array([0.0, 0.0, 1.0 if e % 2 == 0 else -1.0])
        q = hand.CANONICAL_POSE + rng.normal(0, 0.1, 16)
        previous = q.copy()
        qs, targets = [], []
        for _ in range(length):
            a = hand.clip_to_limits(previous + expert(q, previous, axis) * hand.ACTION_SCALE)
            qs.append(q.copy())
            targets.append(a)
            q = q + 0.6 * (a - q)
            previous = a
        qs, targets = np.array(qs), np.array(targets)
        next_q = np.vstack([qs[1:], q])
        episodes.append(Episode(q=qs, target=targets, next_q=next_q, wrist=[1.0, 0, 0, 0], axis=axis,
                                success=e != 3, object_set="normal_cylinder"))
    return episodes


def test_rebuilt_observations_pair_q_t_with_the_previous_base_target(tmp_path):
    ep = synthetic_episodes(1, length=12)[0]
    obs, delta = bc.episode_observations(ep.q[None], ep.target[None], np.tile(ep.wrist, (1, 12, 1)), np.tile(ep.axis, (1, 12, 1)))
    last = obs[0, 5, observation.HISTORY_SLICE].reshape(observation.HISTORY, observation.STEP_DIM)[-1]
    np.testing.assert_allclose(last[:16], ep.q[5], atol=1e-6)
    np.testing.assert_allclose(last[16:], ep.target[4], atol=1e-6)
    first = obs[0, 0, observation.HISTORY_SLICE].reshape(observation.HISTORY, observation.STEP_DIM)
    np.testing.assert_allclose(first[:, 16:], np.tile(ep.q[0], (10, 1)), atol=1e-6)  # a_{-1} = q_0
    np.testing.assert_allclose(delta[0, 1], expert(ep.q[1], ep.target[0], ep.axis), atol=1e-4)


def test_bc_learns_the_expert_far_better_than_zero_action(tmp_path):
    ds = write_dataset(tmp_path / "ds", synthetic_episodes(24, seed=1))
    cfg = bc.BCConfig(width=64, blocks=1, epochs=30, batch_size=64, lr=3e-3, q_noise=0.0, device="cpu",
                      datasets=[str(ds)], eval_fraction=0.2)
    model, report = bc.train_bc(cfg, tmp_path / "out", progress=False)
    assert report["best_eval_mse"] < 0.25 * report["zero_action_eval_mse"]
    assert report["best_eval_mse"] < 0.5 * report["initial_eval_mse"]
    assert report["train_rows"] + report["eval_rows"] == 23 * 60  # the failed episode is left out
    again = bc.load_generalist(tmp_path / "out" / "generalist.pt")
    x = torch.randn(4, observation.OBS_DIM)
    torch.testing.assert_close(again(x), model(x))
    assert json.loads((tmp_path / "out" / "bc_config.json").read_text())["width"] == 64


def test_bc_refuses_datasets_without_successful_episodes(tmp_path):
    eps = synthetic_episodes(2)
    for ep in eps:
        ep.success = False
    ds = write_dataset(tmp_path / "ds", eps)
    with pytest.raises(ValueError, match="no successful episodes"):
        bc.train_bc(bc.BCConfig(datasets=[str(ds)], device="cpu"), tmp_path / "out", progress=False)


def test_auto_device_is_never_a_hard_coded_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bc.resolve_device("auto").type == "cpu"
    assert bc.resolve_device("cpu") == torch.device("cpu")


def _ddp_worker(rank, world, port, dataset, out):
    import os

    import torch as t

    t.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    cfg = bc.BCConfig(width=32, blocks=1, epochs=2, batch_size=64, device="cpu", datasets=[dataset], q_noise=0.0)
    bc.train_bc(cfg, out, progress=False)


def test_two_process_ddp_on_cpu_trains_in_lockstep(tmp_path):
    """torchrun's environment with the gloo backend: both ranks train together and rank 0 writes the result."""
    import socket

    import torch.multiprocessing as mp

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    ds = write_dataset(tmp_path / "ds", synthetic_episodes(6, length=20, seed=2))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # From a fork server: a rank forked straight from this worker can deadlock in OpenMP (the worker's earlier
    # tests started torch's thread pool, and libgomp's pool does not survive a fork); spawning both ranks
    # imported torch twice (32 s). The server imports it once, before any thread pool exists.
    mp.start_processes(_ddp_worker, args=(2, port, str(ds), str(tmp_path / "out")), nprocs=2, join=True,
                       start_method="forkserver")
    report = json.loads((tmp_path / "out" / "bc_report.json").read_text())
    assert report["world_size"] == 2 and report["best_eval_mse"] < report["initial_eval_mse"]
    assert bc.load_generalist(tmp_path / "out" / "generalist.pt").mlp.inp.out_features == 32
