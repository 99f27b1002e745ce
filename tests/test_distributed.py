"""Two CPU processes (gloo): every component decides as one process on the concatenated batch."""

import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import _dist_worker as W

ATOL = 1e-6


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    tmp = tmp_path_factory.mktemp("dist")
    ctx = mp.spawn(W.worker, args=(str(tmp / "init"), str(tmp)), nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("distributed workers did not finish within 120 s (deadlock?)")
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]
    single = W.run_all(None)
    return single, ranks


def close(a, b):
    return all(float((x - y).abs().max()) < ATOL for x, y in zip(a, b))


@pytest.mark.parametrize("key", ["aw_grads", "aw_outputs_grads", "wegan_grads", "freeadv_params", "ttur_params"])
def test_gradients_and_parameters_equal_single_process_and_both_ranks(results, key):
    single, (r0, r1) = results
    assert close(r0[key], single[key]), key
    assert close(r1[key], single[key]), key
    assert all(torch.equal(x, y) for x, y in zip(r0[key], r1[key])), "ranks disagree"


@pytest.mark.parametrize("key", ["aw_stats", "aw_outputs_stats"])
def test_aw_case_and_weights_are_global(results, key):
    single, (r0, r1) = results
    assert r0[key]["case"] == r1[key]["case"] == single[key]["case"]
    for k in ("w_real", "w_fake", "score_real", "score_fake", "angle"):
        assert r0[key][k] == r1[key][k] == pytest.approx(single[key][k], abs=ATOL)


def test_wegan_normaliser_runs_over_the_global_batch(results):
    single, (r0, r1) = results
    torch.testing.assert_close(torch.cat([r0["wegan_weights"], r1["wegan_weights"]]), single["wegan_weights"],
                               atol=ATOL, rtol=0)


def test_scheduler_decides_identically_on_every_rank(results):
    single, (r0, r1) = results
    assert r0["decisions"] == r1["decisions"] == single["decisions"]
    assert len(r0["decisions"]) == 100 and set(r0["decisions"]) == {"D", "G"}


def test_freeadv_delta_is_per_rank(results):
    single, (r0, r1) = results
    torch.testing.assert_close(torch.cat([r0["freeadv_delta"], r1["freeadv_delta"]]), single["freeadv_delta"],
                               atol=0, rtol=0)


def test_no_collective_outside_torch_distributed(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a collective was issued outside torch.distributed")

    for name in ("all_reduce", "all_gather", "broadcast", "reduce", "all_gather_into_tensor"):
        monkeypatch.setattr(dist, name, forbidden)
    W.run_all(None)
