"""[33]'s protocol (the plain GAN of Metz et al.'s demo) for every technique: settings, each technique's
iterations written out by hand, compare --protocol, the protocols claim's decision rule."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_optim_experiments import paper_gaussians8 as P


def test_protocol_is_the_reference_demos():
    # Metz et al.'s demo: batch 512, D 1e-4, G 1e-3, beta1 0.5, eps 1e-8, 25k iterations, every 5k,
    # z of 256, two tanh layers of 128, orthogonal init with gain 1.4, mixture std 0.01 on the unit circle.
    expected = {"batch": 512, "lr_d": 1e-4, "lr_g": 1e-3, "eps": 1e-8, "iterations": 25_000, "every": 5_000,
                "z_dim": 256, "hidden": 128, "layers": 2, "gain": 1.4, "std": 0.01, "radius": 1.0}
    assert {k: P.PROTOCOL[k] for k in expected} == expected
    assert P.PROTOCOL["betas"][0] == 0.5
    c = P.centres().double()
    assert torch.allclose(c.norm(dim=1), torch.ones(8, dtype=torch.float64), atol=1e-6)
    assert len({(round(float(a), 4), round(float(b), 4)) for a, b in c}) == 8  # eight distinct modes


def test_one_simultaneous_step_by_hand():
    small = {"z_dim": 3, "hidden": 4, "layers": 2, "batch": 5, "iterations": 1, "every": 1, "n_samples": 7}
    out = P.run("plain", 0, small)
    # The same step written out: both gradients at the initial parameters, then one Adam step each.
    p = {**P.PROTOCOL, **small}
    torch.manual_seed(0)
    G = P._tanh_mlp(3, 2, 4, 2, 1.4)
    D = P._tanh_mlp(2, 1, 4, 2, 1.4)
    gen = torch.Generator().manual_seed(10_000)
    idx = torch.randint(0, 8, (5,), generator=gen)
    x = P.centres()[idx] + 0.01 * torch.randn(5, 2, generator=gen)
    z = torch.randn(5, 3, generator=gen)
    loss = F.softplus(-D(x)).mean() + F.softplus(D(G(z))).mean()  # BCE on logits, real 1 / fake 0
    g_d = torch.autograd.grad(loss, list(D.parameters()), retain_graph=True)
    g_g = torch.autograd.grad(-loss, list(G.parameters()))  # G minimises minus D's loss
    with torch.no_grad():
        for params, grads, lr in ((G.parameters(), g_g, 1e-3), (D.parameters(), g_d, 1e-4)):
            for w, g in zip(params, grads):
                # Adam's first step: lr * g / (|g| + eps) after bias correction
                w -= lr * g / (g.abs() + 1e-8)
        expected = G(torch.randn(7, 3, generator=torch.Generator().manual_seed(20_000))).numpy()
    np.testing.assert_allclose(out["snapshots"][1], expected, atol=1e-6)


def test_aw_changes_the_run_and_runs_are_reproducible():
    small = {"z_dim": 8, "hidden": 8, "batch": 32, "iterations": 20, "every": 10, "n_samples": 50}
    a, b = P.run("plain", 1, small), P.run("plain", 1, small)
    c = P.run("aw", 1, small)
    assert sorted(a["snapshots"]) == [10, 20] and a["snapshots"][20].shape == (50, 2)
    np.testing.assert_array_equal(a["snapshots"][20], b["snapshots"][20])
    assert not np.allclose(a["snapshots"][20], c["snapshots"][20])
    with pytest.raises(ValueError, match="technique"):
        P.run("wgan", 0, small)


def test_parallel_runs_equal_serial_runs(tmp_path):
    small = {"z_dim": 4, "hidden": 4, "batch": 16, "iterations": 6, "every": 3, "n_samples": 10}
    serial = P.run_all(["plain", "aw"], [0, 1], small, workers=1)
    parallel = P.run_all(["plain", "aw"], [0, 1], small, workers=2)
    for s, q in zip(serial, parallel):
        assert (s["technique"], s["seed"]) == (q["technique"], q["seed"])
        for it in s["snapshots"]:
            np.testing.assert_array_equal(s["snapshots"][it], q["snapshots"][it])
    path = P.save(serial, tmp_path / "runs.npz")
    with np.load(path) as saved:
        np.testing.assert_array_equal(saved["aw_s1_it6"], serial[3]["snapshots"][6])
    assert math.isfinite(float(np.load(path)["plain_s0_seconds"]))


# ------------------------------------------------------------------ every technique, written out by hand
SMALL = {"z_dim": 3, "hidden": 4, "layers": 2, "batch": 5, "every": 1, "n_samples": 7}
ATOL = 1e-6


class HandAdam:
    """Adam written out (Kingma & Ba, Algorithm 1), one state per parameter."""

    def __init__(self, params, lr, betas=(0.5, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = list(params), lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        with torch.no_grad():
            for w, g, m, v in zip(self.params, grads, self.m, self.v):
                m.mul_(b1).add_((1 - b1) * g)
                v.mul_(b2).add_((1 - b2) * g * g)
                w -= self.lr * (m / (1 - b1 ** self.t)) / ((v / (1 - b2 ** self.t)).sqrt() + self.eps)


def start(seed=0):
    """The run's initial networks and its data stream, rebuilt from the seeds."""
    torch.manual_seed(seed)
    G = P._tanh_mlp(3, 2, 4, 2, 1.4)
    D = P._tanh_mlp(2, 1, 4, 2, 1.4)
    return G, D, torch.Generator().manual_seed(10_000 + seed)


def batch(gen):
    idx = torch.randint(0, 8, (5,), generator=gen)
    x = P.centres()[idx] + 0.01 * torch.randn(5, 2, generator=gen)
    return x, torch.randn(5, 3, generator=gen)


def bce_d(D, x, fake):
    return F.softplus(-D(x)).mean() + F.softplus(D(fake)).mean()


def saturating_g(d_fake):
    return -F.softplus(d_fake).mean()  # log(1 - sigmoid(d)), minimised by G


def check(out, G, D, seed=0, n=7):
    eval_gen = torch.Generator().manual_seed(20_000 + seed)
    for _ in out["snapshots"]:  # one draw of evaluation noise per snapshot; the last one is compared
        z = torch.randn(n, 3, generator=eval_gen)
    expected = G(z).detach().numpy()
    last = max(out["snapshots"])
    np.testing.assert_allclose(out["snapshots"][last], expected, atol=ATOL)
    for w, w_ref in zip(out["D"].parameters(), D.parameters()):
        torch.testing.assert_close(w, w_ref, atol=ATOL, rtol=0)


def simultaneous(technique, d_grads, g_loss, lr_d=1e-4, lr_g=1e-3, iterations=2):
    """``iterations`` simultaneous steps: both gradients at the same parameters, then both Adam steps."""
    G, D, gen = start()
    opt_g, opt_d = HandAdam(G.parameters(), lr_g), HandAdam(D.parameters(), lr_d)
    for _ in range(iterations):
        x, z = batch(gen)
        fake = G(z)
        g_g = torch.autograd.grad(g_loss(D(fake)), list(G.parameters()))
        g_d = d_grads(D, x, fake.detach())
        opt_d.step(g_d)
        opt_g.step(g_g)
    out = P.run(technique, 0, {**SMALL, "iterations": iterations}, models=True)
    check(out, G, D)
    return out


def plain_d_grads(D, x, fake):
    return torch.autograd.grad(bce_d(D, x, fake), list(D.parameters()))


def test_baseline_is_plain_and_two_steps_match_by_hand():
    out = simultaneous("baseline", plain_d_grads, saturating_g)
    plain = P.run("plain", 0, {**SMALL, "iterations": 2})
    np.testing.assert_array_equal(out["snapshots"][2], plain["snapshots"][2])
    assert out["log"][2][:2] == (2, 2)


def test_wegan_weights_the_saturating_loss_by_hand():
    eta = 0.01

    def weighted(d_fake):
        d = d_fake.reshape(-1)
        p = torch.sigmoid(d.detach())
        w = eta ** (1 - p)
        w = w / w.sum()  # w_i = eta^(1 - D(G(z_i))) / sum_j eta^(1 - D(G(z_j)))
        return (w * -F.softplus(d)).sum()

    simultaneous("wegan", plain_d_grads, weighted)
    simultaneous("wegan:0.5", plain_d_grads, lambda d: (lambda w: (w / w.sum() * -F.softplus(d.reshape(-1))).sum())(
        0.5 ** (1 - torch.sigmoid(d.detach().reshape(-1)))))


def test_ttur_runs_d_at_three_times_g_by_hand():
    simultaneous("ttur", plain_d_grads, saturating_g, lr_d=3e-3)
    simultaneous("ttur:5", plain_d_grads, saturating_g, lr_d=5e-3)


def test_aw_weights_the_d_gradient_by_hand():
    from _reference import algorithm1

    def aw_grads(D, x, fake):
        params = list(D.parameters())
        out_r, out_f = D(x), D(fake)
        g_r = torch.autograd.grad(F.softplus(-out_r).mean(), params)
        g_f = torch.autograd.grad(F.softplus(out_f).mean(), params)
        flat = [torch.cat([g.reshape(-1) for g in gs]).double().numpy() for gs in (g_r, g_f)]
        w_r, w_f, _ = algorithm1(*flat, float(torch.sigmoid(out_r.detach().double()).mean()),
                                 float(torch.sigmoid(out_f.detach().double()).mean()))
        return [w_r * a + w_f * b for a, b in zip(g_r, g_f)]

    simultaneous("aw", aw_grads, saturating_g)


def test_freeadv_replays_with_a_persistent_perturbation_by_hand():
    eps = P.PROTOCOL["freeadv_epsilon"]
    G, D, gen = start()
    delta = torch.randn(5, 2).clamp(-eps, eps)  # the official random start, projected onto the L-inf ball
    opt_g, opt_d = HandAdam(G.parameters(), 1e-3), HandAdam(D.parameters(), 1e-4)
    for _ in range(2):
        x, z = batch(gen)
        fake = G(z)
        g_g = torch.autograd.grad(saturating_g(D(fake)), list(G.parameters()))
        fake = fake.detach()
        for _replay in range(2):  # MAX_ADV_STEP = 2 on the same batch, one D step each
            x_adv = (x + delta).requires_grad_(True)
            loss = F.softplus(-D(x_adv)).mean() + F.softplus(D(fake)).mean()
            *g_d, g_x = torch.autograd.grad(loss, [*D.parameters(), x_adv])
            delta = (delta + eps * g_x.sign()).clamp(-eps, eps)  # ascent on D's real loss, then project
            opt_d.step(g_d)
        opt_g.step(g_g)
    out = P.run("freeadv", 0, {**SMALL, "iterations": 2}, models=True)
    check(out, G, D)
    assert out["log"][2][:2] == (4, 2)


def test_adaptive_updates_one_network_per_iteration_by_hand():
    G, D, gen = start()
    opt_g, opt_d = HandAdam(G.parameters(), 1e-3), HandAdam(D.parameters(), 1e-4)
    ratio_d = ratio_g = 1.0  # Algorithm 1 starts both ratios at 1
    prev = None
    choices = []
    for _ in range(6):
        x, z = batch(gen)
        fake = G(z)
        with torch.no_grad():
            loss_g, loss_d = float(saturating_g(D(fake))), float(bce_d(D, x, fake))
        if ratio_d > ratio_g:  # lambda = 1; a tie goes to G
            choices.append("D")
            opt_d.step(plain_d_grads(D, x, fake.detach()))
        else:
            choices.append("G")
            opt_g.step(torch.autograd.grad(saturating_g(D(fake)), list(G.parameters())))
        prev = prev or (loss_g, loss_d)  # the first iteration: previous losses = current ones
        ratio_g = abs((loss_g - prev[0]) / prev[0])
        ratio_d = abs((loss_d - prev[1]) / prev[1])
        prev = (loss_g, loss_d)
    out = P.run("adaptive", 0, {**SMALL, "iterations": 6}, models=True)
    check(out, G, D)
    assert out["log"][6][:2] == (choices.count("D"), choices.count("G"))
    assert choices[:2] == ["G", "G"] and "D" in choices  # the schedule does switch within six iterations


@pytest.mark.parametrize("bad", ["nd:2", "aw+freeadv", "wgan", ""])
def test_techniques_outside_the_protocol_are_refused(bad):
    with pytest.raises(ValueError, match="technique"):
        P.run(bad, 0, {**SMALL, "iterations": 1})
    with pytest.raises(ValueError, match="technique"):
        P.run_all(["baseline", bad], [0], {**SMALL, "iterations": 1})


def test_cache_saves_each_run_and_reuses_it(tmp_path, monkeypatch):
    small = {**SMALL, "iterations": 4, "every": 2}
    first = P.run_all(["baseline", "ttur"], [0, 1], small, cache=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline_s0.npz", "baseline_s1.npz", "ttur_s0.npz",
                                                         "ttur_s1.npz"]
    monkeypatch.setattr(P, "run", lambda *a, **k: pytest.fail("a saved run was run again"))
    again = P.run_all(["baseline", "ttur"], [0, 1], small, cache=tmp_path, evaluate=True)
    for a, b in zip(first, again):
        assert (a["technique"], a["seed"], a["log"]) == (b["technique"], b["seed"], b["log"])
        np.testing.assert_array_equal(a["snapshots"][4], b["snapshots"][4])
        assert set(b["metrics"][4]) == {"modes", "modes_veegan", "hq", "mmd", "frechet", "coverage", "share_min",
                                        "share_max", *(f"share_{i}" for i in range(8))}


# ------------------------------------------------------------------ compare --protocol
def _rows(path):
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("protocol", ["quick", "paper", None])
def test_compare_protocol_writes_its_files_and_names_the_protocol(protocol, tmp_path, capsys):
    from gan_optim.cli import main

    out = tmp_path / "cmp"
    args = ["compare", "--steps", "4", "--eval-every", "2", "--seeds", "2", "--batch", "16", "--no-progress",
            "--techniques", "baseline,wegan,adaptive", "--out", str(out)]
    assert main(args + (["--protocol", protocol] if protocol else [])) == 0
    rows = _rows(out / "results.csv")
    assert [(r["technique"], r["seed"], r["step"]) for r in rows] == [
        (t, s, i) for t in ("baseline", "wegan", "adaptive") for s in "01" for i in "24"]
    assert {"d_updates", "g_updates", "wall_s", "modes", "modes_veegan", "hq", "mmd", "frechet"} <= set(rows[0])
    # simultaneous updates: one D and one G step per iteration; adaptive: one of them
    assert {(r["d_updates"], r["g_updates"]) for r in rows if r["technique"] == "baseline"} == {("2", "2"),
                                                                                                ("4", "4")}
    assert all(int(r["d_updates"]) + int(r["g_updates"]) == int(r["step"]) for r in rows
               if r["technique"] == "adaptive")
    md = (out / "summary.md").read_text()
    name = protocol or "quick"  # quick is the default on gaussians8
    assert f"protocol {name}" in md and f"Protocol `{name}`" in md
    assert "batch 16" in md and "4 iterations (the paper: 25000)" in md and "Adam D 0.0001 / G 0.001" in md
    assert "modes_veegan ↑" in md and "bootstrap 95% interval" in md and "`wegan` η 0.01" in md
    for png in ("curves.png", "samples.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "results.csv" in capsys.readouterr().out


def test_compare_protocol_defaults_are_the_papers(monkeypatch, tmp_path):
    from gan_optim_experiments import cli

    seen = {}

    def fake_run_all(techniques, seeds, protocol, **kw):
        seen.update(protocol=protocol, techniques=list(techniques), seeds=list(seeds), workers=kw["workers"])
        raise ValueError("stop here")

    monkeypatch.setattr(P, "run_all", fake_run_all)
    assert cli.main("compare", ["--protocol", "paper", "--no-progress", "--out", str(tmp_path / "a")]) == 2
    assert seen["protocol"] == {"every": 1250} and seen["seeds"] == list(range(10))  # the default: 10 seeds
    assert seen["techniques"] == ["baseline", "aw", "wegan", "adaptive", "ttur", "freeadv"]
    assert {**P.PROTOCOL, **seen["protocol"]}["iterations"] == 25_000
    assert cli.main("compare", ["--no-progress", "--workers", "3", "--out", str(tmp_path / "b")]) == 2
    assert seen["protocol"] == {"iterations": 4000, "every": 200} and seen["workers"] == 3


@pytest.mark.parametrize("args, message", [
    (["--protocol", "quick", "--lr", "1e-3"], "--lr"),
    (["--protocol", "paper", "--radius", "3"], "--radius"),
    (["--task", "digits", "--protocol", "paper"], "--protocol"),
    (["--protocol", "fast"], "--protocol"),
])
def test_compare_protocol_rejects_what_does_not_apply(args, message, tmp_path, capsys):
    from gan_optim_experiments.cli import main

    with pytest.raises(SystemExit) as exit_:
        main("compare", args + ["--steps", "1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_compare_protocol_bad_technique_is_a_message(tmp_path, capsys):
    from gan_optim_experiments.cli import main

    assert main("compare", ["--techniques", "baseline,nd:3", "--steps", "1", "--no-progress",
                            "--out", str(tmp_path)]) == 2
    assert "nd:k" in capsys.readouterr().err


def test_compare_short_protocol_is_the_earlier_setting(tmp_path):
    from gan_optim_experiments.cli import main

    out = tmp_path / "s"
    assert main("compare", ["--protocol", "short", "--steps", "2", "--eval-every", "2", "--seeds", "1",
                            "--techniques", "baseline", "--no-progress", "--out", str(out)]) == 0
    assert [r["step"] for r in _rows(out / "results.csv")] == ["0", "2"]  # the runner evaluates at step 0
    assert "Protocol `" not in (out / "summary.md").read_text()


# ------------------------------------------------------------------ the protocols claim's decision rule
from hypothesis import assume, given, settings, strategies as st  # noqa: E402

from gan_optim_experiments.claims import _rule_verdicts  # noqa: E402

finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(deadline=None, max_examples=100)
@given(st.lists(finite, min_size=5, max_size=5), st.floats(-1e3, 1e3), st.booleans())
def test_rule_verdicts_are_better_or_worse_only_where_the_rule_shows_a_difference(base, shift, lower_better):
    from gan_optim_experiments.stats import decide, metric_tolerance

    a = [v + shift for v in base]
    per_seed = {("baseline", "mmd"): base, ("aw", "mmd"): a}
    v = _rule_verdicts(per_seed, {"mmd": lower_better})[0][("aw", "mmd")]
    (c,) = decide([(a, base, metric_tolerance("mmd", base))])
    if c.outcome == "no difference shown":
        assert v == "no difference shown"
    else:
        assert v == ("better" if (c.outcome == "lower") == lower_better else "worse")
    assert ("baseline", "mmd") not in _rule_verdicts(per_seed, {"mmd": lower_better})[0]


@pytest.mark.parametrize("technique", ["baseline", "aw", "wegan", "adaptive", "ttur", "freeadv"])
def test_a_shorter_run_is_the_longer_runs_prefix(technique):
    # quick is paper stopped early: the state at iteration k does not depend on the run's length
    small = {**SMALL, "batch": 16, "every": 3}
    short, long_ = P.run(technique, 2, {**small, "iterations": 3}), P.run(technique, 2, {**small, "iterations": 9})
    np.testing.assert_array_equal(short["snapshots"][3], long_["snapshots"][3])
    assert short["log"][3][:2] == long_["log"][3][:2]
    assert not np.array_equal(long_["snapshots"][3], long_["snapshots"][9])


@settings(deadline=None, max_examples=200)
@given(st.lists(st.integers(0, 4), min_size=6, max_size=6), st.lists(st.integers(0, 4), min_size=6, max_size=6),
       st.booleans())
def test_rank_correlation_is_spearmans_with_average_ranks(a, b, lower_better):
    from gan_optim_experiments.claims import _ranks, _spearman

    names = list("abcdef")
    ra = _ranks(dict(zip(names, map(float, a))), lower_better)
    rb = _ranks(dict(zip(names, map(float, b))), lower_better)
    sign = 1 if lower_better else -1
    for values, ranks in ((a, ra), (b, rb)):
        for n, v in zip(names, values):
            below = sum(sign * u < sign * v for u in values)
            ties = values.count(v)
            assert ranks[n] == below + (ties + 1) / 2  # 1-based, ties share the mean of their positions
    assume(len(set(a)) > 1 and len(set(b)) > 1)
    x, y = np.array([ra[n] for n in names]), np.array([rb[n] for n in names])
    expected = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(((x - x.mean()) ** 2).sum()
                                                                   * ((y - y.mean()) ** 2).sum())
    assert _spearman(ra, rb) == pytest.approx(expected, abs=1e-12)
    if len(set(a)) == 6:  # no ties: 1 - 6 sum d^2 / (n (n^2 - 1))
        assert _spearman(ra, ra) == pytest.approx(1.0)


def test_window_verdicts_average_each_runs_evaluations_from_the_window_start():
    """Per seed the metric is the mean of its rows at step >= start; the verdict rule compares those means."""
    from gan_optim_experiments.claims import PROTOCOL_METRICS, _window_verdicts
    from gan_optim_experiments.runner import RunResult

    def run(technique, seed, mmd_values):
        rows = [{"step": s, "mmd": v, **{m: 1.0 for m, _ in PROTOCOL_METRICS if m != "mmd"}}
                for s, v in zip((100, 200, 300), mmd_values)]
        return RunResult(technique, seed, rows)

    # From step 200 on, the per-seed means are aw 9.0 + 0.55 k vs baseline 5.25 + 0.5 k (k = 0..4): all five aw
    # seeds above all five baseline seeds, exact p = 2/252, Holm over 5 metrics 0.04: worse.
    # From step 300 on (the last evaluation alone): aw 0.1 k vs baseline 0.5 + 0.5 k: better.
    results = [run("baseline", k, (0.0, 10.0 + k / 2, 0.5 + k / 2)) for k in range(5)]
    results += [run("aw", k, (0.0, 18.0 + k, 0.0 + k / 10)) for k in range(5)]
    lower = {m: m in ("mmd", "frechet") for m, _ in PROTOCOL_METRICS}
    assert _window_verdicts(results, lower, 200)[0][("aw", "mmd")] == "worse"
    assert _window_verdicts(results, lower, 300)[0][("aw", "mmd")] == "better"
    assert _window_verdicts(results, lower, 200)[0][("aw", "hq")] == "no difference shown"
    assert ("baseline", "mmd") not in _window_verdicts(results, lower, 100)[0]
    # three seeds a side can never pass (smallest exact p 0.1)
    assert _window_verdicts(results[:3] + results[5:8], lower, 200)[0][("aw", "mmd")] == "no difference shown"
