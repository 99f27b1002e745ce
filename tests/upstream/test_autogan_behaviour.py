"""What each technique does inside AutoGAN's real ``functions.train`` (``GAN_OPTIM_AUTOGAN_DIR``).

As in ``test_biggan_behaviour``: one iteration per call (a one-batch loader), D, G and the
optimizers observed from the outside, and references computed here, independently.
"""

from __future__ import annotations

import contextlib
import types

import pytest
import torch
import torch.nn.functional as F

from upstream._observe import (GradAtStep, Recorder, assert_grads_close, assert_schedule, aw_hinge_expected, changed,
                               grads, params_of)
from upstream._shims import (RecordingWriter, autogan_networks, autogan_stubs, cuda_float_tensor_on_cpu,
                             real_checkout, repo_on_path, synthetic_loader)

REPO, pytestmark = real_checkout("autogan")


@contextlib.contextmanager
def autogan(technique: str, n_critic: int = 1, lr_decay_over: int | None = None, bottom_width: int = 4,
            repo: str | None = None, **options):
    """AutoGAN's networks and optimizers; ``step()`` runs ``functions.train`` on one batch (one iteration)
    (from ``repo``, default the checkout)."""
    with repo_on_path(repo or REPO, autogan_stubs()), cuda_float_tensor_on_cpu():
        import functions
        import models
        from gan_optim.adapters import autogan as adapter

        handle = adapter.patch(technique, namespaces=[], **options)
        args = types.SimpleNamespace(latent_dim=16, gf_dim=8, df_dim=8, bottom_width=bottom_width, d_spectral_norm=True,
                                     gen_batch_size=6, dis_batch_size=4, n_critic=n_critic, print_freq=1000,
                                     max_epoch=1, g_lr=2e-4, d_lr=2e-4, beta1=0.0, beta2=0.9,
                                     init_type="xavier_uniform")
        G, D, opt_g, opt_d = autogan_networks(models, args)
        batches = [b for b in synthetic_loader(40, args.dis_batch_size, size=8 * bottom_width)]
        scheds = None
        if lr_decay_over is not None:
            scheds = (functions.LinearLrDecay(opt_g, args.g_lr, 0.0, 0, lr_decay_over),
                      functions.LinearLrDecay(opt_d, args.d_lr, 0.0, 0, lr_decay_over))
        avg = functions.copy_params(G)
        writer = RecordingWriter()
        wd = {"writer": writer, "train_global_steps": 0}

        def step():
            """One iteration; returns its real batch and the scalars it logged ({tag: last value})."""
            t = wd["train_global_steps"]
            batch = batches[t % len(batches)]
            seen = len(writer.scalars)
            functions.train(args, G, D, opt_g, opt_d, avg, [batch], 0, wd, scheds)
            return batch[0], {tag: v for tag, v, _ in writer.scalars[seen:]}

        yield types.SimpleNamespace(G=G, D=D, opt_g=opt_g, opt_d=opt_d, handle=handle, step=step)


# ---------------------------------------------------------------- aw
def test_aw_d_gradient_is_algorithm1s_weighted_sum_of_that_pass():
    """opt_d steps on w_r grad L_r + w_f grad L_f of that D(real), D(fake) pass (Algorithm 1's weights)."""
    with autogan("aw") as s:
        rec, at = Recorder(s.D), GradAtStep(s.opt_d, s.D)
        for _ in range(3):
            rec.clear()
            at.steps.clear()
            s.step()
            assert len(at.steps) == 1
            real_call, fake_call = rec.calls[0], rec.calls[1]  # AutoGAN's order: D(real), G(z), D(fake)
            D = rec.replay(real_call)
            d_real = D(*real_call["args"]).reshape(-1)
            d_fake = D(*fake_call["args"]).reshape(-1)  # spectral norm's power iteration runs on, as it did
            assert torch.equal(d_fake.detach(), fake_call["out"].reshape(-1))
            params = list(D.parameters())
            expected, unweighted = aw_hinge_expected(d_real, d_fake, params)
            assert_grads_close(at.steps[0], expected, other=unweighted)


# ---------------------------------------------------------------- wegan
def test_wegan_g_gradient_carries_the_weights():
    """opt_g steps on grad of sum_i w_i (-D(G(z_i))), w_i = eta^(1-p_i) / sum_j eta^(1-p_j), p = sigmoid(D)."""
    eta = 0.01
    # 16x16 images (bottom_width 2): at 32x32 this D's outputs on G's samples start near -23, where every
    # weight is 1/N to the last bit and the weighted gradient cannot be told from the plain one.
    with autogan("wegan", bottom_width=2, eta=eta) as s:
        rec_g, rec_d, at = Recorder(s.G), Recorder(s.D), GradAtStep(s.opt_g, s.G)
        for _ in range(2):
            rec_g.clear()
            rec_d.clear()
            at.steps.clear()
            s.step()
            assert len(at.steps) == 1
            g_call, d_call = rec_g.calls[-1], rec_d.calls[-1]  # the G step: D(G(z_g))
            G = rec_g.replay(g_call)
            D = rec_d.replay(d_call)
            d = D(G(*g_call["args"])).reshape(-1)
            assert torch.equal(d.detach(), d_call["out"].reshape(-1))
            p = torch.sigmoid(d.detach().double())
            w = eta ** (1.0 - p)
            w = (w / w.sum()).to(d.dtype)
            params = list(G.parameters())
            expected = grads((w * -d).sum(), params)
            uniform = grads((-d).mean(), params)
            assert_grads_close(at.steps[0], expected, other=uniform)


# ---------------------------------------------------------------- adaptive
def test_adaptive_follows_algorithm1_on_the_logged_losses():
    """Which network moved each iteration == Algorithm 1 replayed on the losses; the logged d_loss / g_loss
    (and the idle G loss of a D iteration) are those of D's outputs in that iteration."""
    with autogan("adaptive", n_critic=5) as s:
        rec = Recorder(s.D)
        decisions, losses = [], []
        for _ in range(14):
            rec.clear()
            g0, d0 = params_of(s.G), params_of(s.D)
            _, logged = s.step()
            moved_g, moved_d = changed(g0, s.G), changed(d0, s.D)
            assert moved_g != moved_d, "exactly one network is updated per iteration"
            outs = [c["out"].reshape(-1) for c in rec.calls]
            assert len(outs) == 2
            if moved_d:
                real, fake = outs  # D(x), D(G(z)): the idle G loss comes from the latter
                assert "g_loss" not in logged
                loss_g = float(-fake.mean())
            else:
                fake, real = outs  # D(G(z_g)) of the G step, then D(x) for the idle D loss
                loss_g = float(-fake.mean())
                assert logged["g_loss"] == pytest.approx(loss_g, abs=1e-6)
                loss_g = logged["g_loss"]
            loss_d = float(F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
            assert logged["d_loss"] == pytest.approx(loss_d, abs=1e-6)
            decisions.append("D" if moved_d else "G")
            losses.append((loss_g, logged["d_loss"]))
        assert_schedule(decisions, losses)


# ---------------------------------------------------------------- ttur
def test_ttur_sets_and_schedules_both_optimizers_own_rates():
    """opt_g / opt_d run at lr_g / (n_G+1)^0.75 and lr_d / (n_D+1)^0.6 (n: that network's steps), n_critic 2."""
    lr_g, lr_d, p_g, p_d = 1e-4, 4e-4, 0.75, 0.6
    with autogan("ttur", n_critic=2, lr_g=lr_g, lr_d=lr_d, g_schedule=p_g, d_schedule=p_d) as s:
        steps = {"G": 0, "D": 0}
        s.opt_g.register_step_pre_hook(lambda *a: steps.__setitem__("G", steps["G"] + 1))
        s.opt_d.register_step_pre_hook(lambda *a: steps.__setitem__("D", steps["D"] + 1))
        for _ in range(4):
            s.step()
            for group in s.opt_g.param_groups:
                assert group["lr"] == pytest.approx(lr_g / (steps["G"] + 1) ** p_g, rel=1e-9, abs=0)
            for group in s.opt_d.param_groups:
                assert group["lr"] == pytest.approx(lr_d / (steps["D"] + 1) ** p_d, rel=1e-9, abs=0)
        assert steps == {"G": 2, "D": 4}


def test_ttur_with_autogans_lr_decay_decays_each_rate_from_its_own_start():
    """With AutoGAN's LinearLrDecay over T steps, the optimizers' own rates after step t are lr (1 - t/T)."""
    lr_g, lr_d, total = 1e-4, 4e-4, 10
    with autogan("ttur", n_critic=1, lr_decay_over=total, lr_g=lr_g, lr_d=lr_d) as s:
        for t in range(4):
            s.step()
            for opt, lr in ((s.opt_g, lr_g), (s.opt_d, lr_d)):
                for group in opt.param_groups:
                    assert group["lr"] == pytest.approx(lr * (1 - t / total), rel=1e-9, abs=0)


# ---------------------------------------------------------------- freeadv
def test_freeadv_delta_moves_stays_in_the_ball_and_persists():
    """D's real input is clamp(x + delta): delta takes the signed-gradient step recomputed here every replay,
    stays in the eps-ball, and the next iteration starts from where it ended."""
    eps = 0.01
    with autogan("freeadv", epsilon=eps) as s:
        rec = Recorder(s.D)
        d_steps = []
        s.opt_d.register_step_pre_hook(lambda *a: d_steps.append(1))
        prev_delta = None
        for _ in range(3):
            rec.clear()
            d_steps.clear()
            x, _ = s.step()
            assert len(d_steps) == 2  # one optimizer step per replay
            assert len(rec.calls) == 5  # (D(x + delta), D(fake)) per replay, then the G step's D(G(z))
            real = [rec.calls[0], rec.calls[2]]
            inputs = [c["args"][0] for c in real]
            for inp in inputs:
                assert float((inp - x).abs().max()) <= eps + 1e-6
                assert float((inp - x).abs().max()) > eps / 2  # perturbed
            assert not torch.equal(inputs[0], inputs[1])  # delta moved between the replays
            delta = s.handle.components["freeadv"].delta
            assert delta is not None and float(delta.abs().max()) <= eps * (1 + 1e-6)
            if prev_delta is not None:
                assert not torch.equal(delta, prev_delta)
                torch.testing.assert_close(inputs[0], (x + prev_delta).clamp(-1, 1), atol=1e-7, rtol=0)
                D = rec.replay(real[0])
                x_adv = inputs[0].clone().requires_grad_(True)
                (g_x,) = torch.autograd.grad(F.relu(1.0 - D(x_adv)).mean(), x_adv)
                moved = (prev_delta + eps * torch.sign(g_x)).clamp(-eps, eps)
                torch.testing.assert_close(inputs[1], (x + moved).clamp(-1, 1), atol=1e-6, rtol=0)
            prev_delta = delta.clone()
