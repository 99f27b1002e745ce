"""What each technique does inside BigGAN-PyTorch's real training step (``GAN_OPTIM_BIGGAN_DIR``).

Each test drives ``train_fns.GAN_training_function`` through the adapter on a tiny CPU
configuration, observes D, G and their optimizers from the outside (hooks, see ``_observe``),
and compares what happened with a reference computed here, independently: plain
``torch.autograd.grad`` on a copy of the network at the state it had, the papers' algorithms
written out by hand. ``scripts/mutation-check`` lists the breakages these tests must catch, and
checks that they do.
"""

from __future__ import annotations

import contextlib
import types

import pytest
import torch
import torch.nn.functional as F

from upstream._observe import (GradAtStep, Recorder, assert_grads_close, assert_schedule, aw_hinge_expected, changed,
                               grads, params_of)
from upstream._shims import biggan_stubs, real_checkout, repo_on_path

REPO, pytestmark = real_checkout("biggan")

ARGS = ["--dataset", "C10", "--G_ch", "8", "--D_ch", "8", "--batch_size", "8", "--G_attn", "0", "--D_attn", "0",
        "--toggle_grads", "--seed", "0"]


@contextlib.contextmanager
def biggan(technique: str, extra: list[str], repo: str | None = None, **options):
    """BigGAN's G, D, G_D and training function (patched with ``technique``), built as ``train.run`` does
    (from ``repo``, default the checkout)."""
    with repo_on_path(repo or REPO, biggan_stubs()):
        import BigGAN
        import train_fns
        import utils
        from gan_optim.adapters import biggan as adapter

        handle = adapter.patch(technique, **options)
        config = vars(utils.prepare_parser().parse_args(ARGS + extra))
        config["resolution"] = utils.imsize_dict[config["dataset"]]
        config["n_classes"] = utils.nclass_dict[config["dataset"]]
        config["G_activation"] = utils.activation_dict[config["G_nl"]]
        config["D_activation"] = utils.activation_dict[config["D_nl"]]
        torch.manual_seed(config["seed"])
        G, D = BigGAN.Generator(**config), BigGAN.Discriminator(**config)
        GD = BigGAN.G_D(G, D)
        state_dict = {"itr": 0, "epoch": 0, "config": config}
        z_, y_ = utils.prepare_z_y(max(config["G_batch_size"], config["batch_size"]), G.dim_z,
                                   config["n_classes"], device="cpu")
        train = train_fns.GAN_training_function(G, D, GD, z_, y_, None, state_dict, config)
        data = torch.Generator().manual_seed(99)
        per_call = config["batch_size"] * config["num_D_steps"] * config["num_D_accumulations"]

        def step():
            state_dict["itr"] += 1
            G.train()
            D.train()
            x = torch.rand(per_call, 3, 32, 32, generator=data) * 2 - 1
            y = torch.randint(0, config["n_classes"], (per_call,), generator=data)
            return x, y, train(x, y)

        yield types.SimpleNamespace(G=G, D=D, GD=GD, config=config, handle=handle, step=step)


# ---------------------------------------------------------------- aw
def test_aw_d_gradient_is_algorithm1s_weighted_sum_of_that_pass():
    """D's .grad at its optimizer step == w_r grad L_r + w_f grad L_f of the same forward (Algorithm 1)."""
    with biggan("aw", ["--num_D_steps", "1"]) as s:
        rec, at = Recorder(s.D), GradAtStep(s.D.optim, s.D)
        bs = s.config["batch_size"]
        for _ in range(3):
            rec.clear()
            at.steps.clear()
            s.step()
            assert len(at.steps) == 1
            call = rec.calls[0]  # the D step: D(cat([G(z), x]), cat([y_fake, y]))
            D = rec.replay(call)
            out = D(*call["args"], **call["kwargs"]).reshape(-1)
            assert torch.equal(out.detach(), call["out"].reshape(-1))  # the replay is that forward
            d_fake, d_real = out[:bs], out[bs:]
            params = list(D.parameters())
            expected, unweighted = aw_hinge_expected(d_real, d_fake, params)
            assert_grads_close(at.steps[0], expected, other=unweighted)


# ---------------------------------------------------------------- wegan
def test_wegan_g_gradient_carries_the_weights():
    """G's .grad at its step == grad of sum_i w_i (-D(G(z_i))), w_i = eta^(1-p_i) / sum_j eta^(1-p_j)."""
    eta = 0.01
    with biggan("wegan", ["--num_D_steps", "1"], eta=eta) as s:
        rec, at = Recorder(s.GD), GradAtStep(s.G.optim, s.G)
        for _ in range(2):
            rec.clear()
            at.steps.clear()
            s.step()
            assert len(at.steps) == 1
            (call,) = [c for c in rec.calls if c["kwargs"].get("train_G")]
            GD = rec.replay(call)
            d = GD(*call["args"], **call["kwargs"]).reshape(-1)
            p = torch.sigmoid(d.detach().double())
            w = eta ** (1.0 - p)
            w = (w / w.sum()).to(d.dtype)
            params = list(GD.G.parameters())
            expected = grads((w * -d).sum(), params)
            uniform = grads((-d).mean(), params)
            assert_grads_close(at.steps[0], expected, other=uniform)


# ---------------------------------------------------------------- adaptive
def test_adaptive_follows_algorithm1_on_the_logged_losses_with_accumulation():
    """Which network moved each call == Algorithm 1 replayed on the logged losses; the logged losses
    (the idle network's included) are those of D's outputs in that call (G loss: mean over 2 accumulations)."""
    n_acc = 2
    with biggan("adaptive", ["--num_D_steps", "1", "--num_G_accumulations", str(n_acc)]) as s:
        rec = Recorder(s.D)
        bs = s.config["batch_size"]
        decisions, losses = [], []
        for _ in range(12):
            rec.clear()
            g0, d0 = params_of(s.G), params_of(s.D)
            _, _, log = s.step()
            moved_g, moved_d = changed(g0, s.G), changed(d0, s.D)
            assert moved_g != moved_d, "exactly one network is updated per call"
            outs = [c["out"].reshape(-1) for c in rec.calls]
            if moved_d:
                assert len(outs) == 1  # D(cat([G(z), x])): the idle G loss needs no forward
                fake, real = outs[0][:bs], outs[0][bs:]
                loss_g = -fake.mean()
            else:
                assert len(outs) == n_acc + 1  # D(G(z)) per accumulation, then D(x) for the idle D loss
                fake, real = outs[n_acc - 1], outs[n_acc]
                loss_g = torch.stack([-o.mean() for o in outs[:n_acc]]).mean()
            assert log["G_loss"] == pytest.approx(float(loss_g), abs=1e-6)
            assert log["D_loss_real"] == pytest.approx(float(F.relu(1.0 - real).mean()), abs=1e-6)
            assert log["D_loss_fake"] == pytest.approx(float(F.relu(1.0 + fake).mean()), abs=1e-6)
            decisions.append("D" if moved_d else "G")
            losses.append((log["G_loss"], log["D_loss_real"] + log["D_loss_fake"]))
        assert_schedule(decisions, losses)


# ---------------------------------------------------------------- ttur
def test_ttur_sets_and_schedules_both_optimizers_own_rates():
    """BigGAN's G.optim / D.optim run at lr_g / (n_G+1)^0.75 and lr_d / (n_D+1)^0.6, n: that network's steps."""
    lr_g, lr_d, p_g, p_d = 1e-4, 4e-4, 0.75, 0.6
    with biggan("ttur", ["--num_D_steps", "2"], lr_g=lr_g, lr_d=lr_d, g_schedule=p_g, d_schedule=p_d) as s:
        steps = {"G": 0, "D": 0}
        s.G.optim.register_step_pre_hook(lambda *a: steps.__setitem__("G", steps["G"] + 1))
        s.D.optim.register_step_pre_hook(lambda *a: steps.__setitem__("D", steps["D"] + 1))
        assert {s.config["G_lr"], s.config["D_lr"]} == {5e-5, 2e-4}  # BigGAN's own rates: not ours
        for _ in range(3):
            s.step()
            for group in s.G.optim.param_groups:
                assert group["lr"] == pytest.approx(lr_g / (steps["G"] + 1) ** p_g, rel=1e-9, abs=0)
            for group in s.D.optim.param_groups:
                assert group["lr"] == pytest.approx(lr_d / (steps["D"] + 1) ** p_d, rel=1e-9, abs=0)
        assert steps == {"G": 3, "D": 6}


# ---------------------------------------------------------------- freeadv
def test_freeadv_delta_moves_stays_in_the_ball_and_persists():
    """D's real half is clamp(x + delta): delta moves every replay (one signed-gradient step of the real
    hinge loss, recomputed here), stays in the eps-ball, and the next call starts from where it ended."""
    eps = 0.01
    with biggan("freeadv", ["--num_D_steps", "1"], epsilon=eps) as s:
        rec = Recorder(s.D)
        d_steps = []
        s.D.optim.register_step_pre_hook(lambda *a: d_steps.append(1))
        prev_delta = None
        for k in range(3):
            rec.clear()
            d_steps.clear()
            x, y, _ = s.step()
            assert len(d_steps) == 2  # one optimizer step per replay
            real = [c for c in rec.calls if torch.equal(c["args"][1], y)]
            assert len(real) == 2  # D(clamp(x + delta), y) once per replay
            inputs = [c["args"][0] for c in real]
            for inp in inputs:
                assert float((inp - x).abs().max()) <= eps + 1e-6
                assert float((inp - x).abs().max()) > eps / 2  # perturbed
            assert not torch.equal(inputs[0], inputs[1])  # delta moved between the replays
            delta = s.handle.components["freeadv"].delta
            assert delta is not None and float(delta.abs().max()) <= eps * (1 + 1e-6)
            if prev_delta is not None:
                assert not torch.equal(delta, prev_delta)  # moved during this call
                # Warm start: this call began where the last one ended.
                torch.testing.assert_close(inputs[0], (x + prev_delta).clamp(-1, 1), atol=1e-7, rtol=0)
                # The first replay's step, by hand: delta + eps * sign(grad_x of the real hinge loss), in the ball.
                D = rec.replay(real[0])
                x_adv = real[0]["args"][0].clone().requires_grad_(True)
                (g_x,) = torch.autograd.grad(F.relu(1.0 - D(x_adv, y)).mean(), x_adv)
                moved = (prev_delta + eps * torch.sign(g_x)).clamp(-eps, eps)
                torch.testing.assert_close(inputs[1], (x + moved).clamp(-1, 1), atol=1e-6, rtol=0)
            prev_delta = delta.clone()


# ---------------------------------------------------------------- none
@pytest.mark.parametrize("extra", [["--split_D"], ["--D_ortho", "1e-3"],
                                   ["--num_D_accumulations", "2", "--num_G_accumulations", "2"]],
                         ids=["split_D", "D_ortho", "accumulations"])
def test_none_is_bit_identical_with_biggans_options(extra):
    """`none` with split_D, D's ortho regularisation and gradient accumulation == BigGAN's own function."""
    from upstream.test_biggan_upstream import _run

    ref = _run(4, 2, extra=extra)
    ours = _run(4, 2, technique="none", extra=extra)
    for net in ("G", "D"):
        for k in ref[net]:
            assert torch.equal(ref[net][k], ours[net][k]), (net, k)
    assert ref["logs"] == ours["logs"]
