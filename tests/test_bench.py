"""The benchmark runner: structure of its output, its memory measurement, and its reference row.

No test here asserts a timing threshold: timings depend on the machine and
its load. They check that every row is there and well formed, that the memory
measurement sees tensor allocations, and that the original-aw reference row
does the work it claims to do.
"""

import json
import math
import time
from types import SimpleNamespace

import pytest
import torch

import gan_optim.functional as F
from gan_optim_benchmarks import bench, cases, timing

#: Smaller than --quick: the whole grid runs in seconds.
TINY = bench.BenchSizes(batch=4, mlp_hidden=8, dcgan_width=2, resnet_width=2, repeats=2, warmup=1)


def test_every_component_on_every_model_gives_one_well_formed_row():
    results = bench.run_bench(TINY)
    pairs = [(r.component, r.model) for r in results]
    assert sorted(pairs) == sorted((c, m) for m in bench.MODELS for c in bench.COMPONENTS)
    for r in results:
        assert math.isfinite(r.ratio) and r.ratio > 0, r
        assert math.isfinite(r.memory_ratio) and r.memory_ratio > 0, r
        assert math.isfinite(r.cpu_ratio) and r.cpu_ratio > 0, r
        assert r.plain_seconds > 0 and r.candidate_seconds > 0, r
        assert r.d_param_bytes > 0, r
    table = bench.format_table(results)
    assert len(table.splitlines()) == 2 + len(results)


def test_cli_json_lists_the_issue_fields(capsys):
    rc = bench.main("bench", ["--quick", "--json", "--models", "mlp", "--components", "aw,wegan",
                              "--repeats", "1"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["component"], r["model"]) for r in rows] == [("aw", "mlp"), ("wegan", "mlp")]
    for row in rows:
        assert {"component", "model", "ratio", "memory_ratio", "cpu_ratio"} <= set(row)
        assert row["ratio"] > 0 and math.isfinite(row["ratio"])


def test_cli_table_is_printed_without_json(capsys):
    assert bench.main("bench", ["--quick", "--models", "mlp", "--components", "ttur", "--repeats", "1",
                                "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert "| ttur | mlp |" in out


@pytest.mark.parametrize("argv", [["--models", "vgg"], ["--components", "aw,nope"], ["--repeats", "0"]])
def test_cli_rejects_unknown_choices(argv):
    with pytest.raises(SystemExit):
        bench.main("bench", ["--quick", *argv])


def test_short_steps_are_batched_into_samples_of_the_minimum_duration():
    calls = {"plain": 0, "candidate": 0}

    def plain():
        calls["plain"] += 1
        time.sleep(0.001)

    def candidate():
        calls["candidate"] += 1
        time.sleep(0.002)

    timing = bench.time_interleaved(plain, candidate, repeats=3, warmup=1, device=torch.device("cpu"),
                                    min_sample_seconds=0.01)
    assert timing.calls_per_sample > 1
    # warm-up 1, calibration 1 (plain only), then 3 samples of k calls each
    assert calls == {"plain": 2 + 3 * timing.calls_per_sample, "candidate": 1 + 3 * timing.calls_per_sample}


def test_memory_measurement_sees_tensor_storage():
    """A step that holds 4 MiB and 1 MiB at once, then frees both, peaks at 5 MiB (tracemalloc would see ~0)."""
    mib = 2 ** 20

    def step():
        a = torch.empty(mib, dtype=torch.uint8)
        b = torch.empty(4 * mib, dtype=torch.uint8)
        del a, b

    peak = bench.peak_step_memory(step, torch.device("cpu"))
    assert 5 * mib <= peak < 5 * mib + 64 * 1024


def test_memory_measurement_counts_only_growth_during_the_measured_step():
    """Memory the first (unmeasured) step leaves alive is the second step's baseline, not its peak."""
    kept = []
    mib = 2 ** 20

    def step():
        kept.append(torch.empty(2 * mib, dtype=torch.uint8))  # grows by 2 MiB per call and keeps it

    peak = bench.peak_step_memory(step, torch.device("cpu"))
    assert 2 * mib <= peak < 2 * mib + 64 * 1024


def test_replayed_peak_of_synthetic_events():
    def ev(t, n):
        return SimpleNamespace(start_ns=lambda: t, nbytes=lambda: n)

    events = [ev(1, 100), ev(2, -100), ev(3, 50), ev(5, 30), ev(6, 40), ev(7, -70), ev(8, 10)]
    # From t=5 on: baseline 50, running totals 80, 120, 50, 60 -> peak 70 above baseline.
    assert timing._replayed_peak(events, boundary_ns=5) == 70
    assert timing._replayed_peak(events, boundary_ns=100) == 0


@pytest.mark.parametrize("score_real,score_fake", [(0.3, 0.6), (0.9, 0.5), (0.6, 0.58)])
def test_original_reference_weights_match_algorithm_1(score_real, score_fake):
    """The reference row's Python-float Algorithm 1 agrees with the library's formula."""
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        g_r = torch.randn(50, generator=gen, dtype=torch.float64)
        g_f = torch.randn(50, generator=gen, dtype=torch.float64)
        expected = F.aw_weights(g_r, g_f, score_real, score_fake)
        got = cases._original_aw_weights(g_r, g_f, score_real, score_fake)
        assert got == pytest.approx([float(w) for w in expected], rel=1e-9)


def test_original_reference_step_leaves_the_aw_gradient():
    """The reference's two-backward step and aw.from_outputs deposit the same weighted gradient."""
    ref = bench.build_models("mlp", TINY, torch.device("cpu"))
    lib = bench.build_models("mlp", TINY, torch.device("cpu"))
    cases._original_aw_reference_step(ref)()
    cases._aw_concat_step(lib)()
    for p_ref, p_lib in zip(ref.D.parameters(), lib.D.parameters()):
        torch.testing.assert_close(p_ref.grad, p_lib.grad, rtol=1e-5, atol=1e-7)


def test_aw_step_differs_from_the_plain_step():
    """The candidate is really the component: its gradient is not the plain step's."""
    plain = bench.build_models("mlp", TINY, torch.device("cpu"))
    aw = bench.build_models("mlp", TINY, torch.device("cpu"))
    cases._plain_d_step(plain)()
    cases._aw_step(aw)()
    grads_plain = torch.cat([p.grad.reshape(-1) for p in plain.D.parameters()])
    grads_aw = torch.cat([p.grad.reshape(-1) for p in aw.D.parameters()])
    assert not torch.allclose(grads_plain, grads_aw)


def test_biggan_row_needs_a_checkout(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GAN_OPTIM_BIGGAN_DIR", raising=False)
    assert bench.main("bench", ["--quick", "--models", "biggan"]) == 2
    assert "--biggan-dir" in capsys.readouterr().err
    assert bench.main("bench", ["--quick", "--biggan-dir", str(tmp_path)]) == 2
    assert "not a BigGAN-PyTorch checkout" in capsys.readouterr().err


def test_row_targets_follow_the_size_and_the_model():
    from gan_optim_benchmarks.report import time_target

    assert time_target("aw-concat", "resnet-sn", False) == 1.10
    assert time_target("aw-concat", "biggan", False) == 1.15
    assert time_target("aw-concat", "mlp", False) is None  # no target: fixed cost dominates a tiny MLP
    assert time_target("aw", "dcgan32", True) == 1.15 and time_target("aw", "dcgan32", False) == 1.05
    assert time_target("aw", "mlp", True) == 1.6
    assert time_target("null", "mlp", False) is None


def test_cli_ops_only_writes_the_operator_counts_to_csv(tmp_path, capsys):
    import csv

    path = tmp_path / "ops.csv"
    assert bench.main("bench", ["--quick", "--ops-only", "--models", "mlp", "--components", "aw,null",
                                "--csv", str(path)]) == 0
    assert "operator counts only" in capsys.readouterr().out
    rows = list(csv.DictReader(path.open()))
    assert [(r["component"], r["model"]) for r in rows] == [("aw", "mlp"), ("null", "mlp")]
    null = rows[1]
    assert int(null["plain_ops"]) == int(null["candidate_ops"]) > 0 and float(null["ops_ratio"]) == 1.0
    assert rows[0]["ratio"] == "" and int(rows[0]["candidate_ops"]) > int(rows[0]["plain_ops"])


def test_cli_gpu_size_runs_both_batches_at_the_gpu_widths(tmp_path, capsys):
    import csv

    from gan_optim_benchmarks.models import GPU

    # The sizes the issue names: batch 64 and 256 per half, DCGAN width 64, ResNet-SN 128, BigGAN D_ch 64.
    assert [s.batch for s in GPU] == [64, 256]
    assert {(s.dcgan_width, s.resnet_width, s.biggan_width) for s in GPU} == {(64, 128, 64)}
    path = tmp_path / "gpu.csv"
    assert bench.main("bench", ["--size", "gpu", "--ops-only", "--models", "mlp", "--components", "aw,null",
                                "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(gpu, cpu" in out and "batch 64 and 256 per half" in out
    rows = list(csv.DictReader(path.open()))
    assert [(r["component"], r["model"]) for r in rows] == [("aw", "mlp@64"), ("null", "mlp@64"),
                                                            ("aw", "mlp@256"), ("null", "mlp@256")]
    assert "ops met" in out  # the model's target applies to its @batch rows too


def test_cli_size_and_quick_are_exclusive(capsys):
    with pytest.raises(SystemExit) as done:
        bench.main("bench", ["--quick", "--size", "gpu"])
    assert done.value.code == 2


def test_cli_refuses_an_unwritable_csv(tmp_path, capsys):
    assert bench.main("bench", ["--quick", "--ops-only", "--models", "mlp", "--components", "null",
                                "--csv", str(tmp_path / "missing" / "ops.csv")]) == 2
    assert "cannot write --csv" in capsys.readouterr().err


def test_report_compares_two_csv_files(tmp_path, capsys):
    from gan_optim_benchmarks import report

    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    rows = bench.run_bench(TINY, models=["mlp"], components=["aw", "null"], measure_time=False,
                           measure_memory=False)
    report.write_csv(rows, str(before))
    rows[0].candidate_ops -= 10  # as if the component had become cheaper
    report.write_csv(rows, str(after))
    assert report.main(["ops", str(before), str(after), "aw,null"]) == 0
    lines = capsys.readouterr().out.splitlines()
    aw_row = next(line for line in lines if line.startswith("| aw | mlp |"))
    cells = [c.strip() for c in aw_row.strip("|").split("|")]
    assert int(cells[3]) - float(cells[5]) == 10
    assert report.main(["ops", str(before)]) == 2
