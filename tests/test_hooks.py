"""Step post-hooks as torch.optim runs them: after the step is committed; a hook that raises propagates,
the step stays taken, and the hooks registered after it do not run."""

import copy
import math

import pytest
import torch
import torch.nn as nn

from gan_optim import AdaptiveScheduler, FreeAdvDiscriminator, TwoTimescale, WeightedGeneratorLoss


class HookFailed(Exception):
    pass


def raising_then_recording(component):
    """Register a hook that records the component's state it sees and raises, and one after it."""
    seen, after = [], []

    def boom(obj, stats):
        seen.append((obj, stats))
        raise HookFailed("logging failed")

    component.register_step_post_hook(boom)
    component.register_step_post_hook(lambda obj, stats: after.append(stats))
    return seen, after


def test_torch_optim_keeps_the_step_when_a_post_hook_raises():
    """The behaviour the components follow, checked on torch itself."""
    p = nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([p], lr=0.5)
    p.grad = torch.tensor([2.0])
    opt.register_step_post_hook(lambda *_: (_ for _ in ()).throw(HookFailed()))
    with pytest.raises(HookFailed):
        opt.step()
    assert p.item() == 0.0


def test_wegan_hook_raising_keeps_the_call():
    torch.manual_seed(0)
    d = torch.randn(5, dtype=torch.float64)
    wg = WeightedGeneratorLoss(eta=0.1)
    seen, after = raising_then_recording(wg)
    with pytest.raises(HookFailed, match="logging failed"):
        wg(d)
    p = torch.sigmoid(d)
    expected = 0.1 ** (1 - p) / (0.1 ** (1 - p)).sum()  # Algorithm 1, written out
    assert wg.steps == 1 and after == []
    torch.testing.assert_close(wg.last_weights, expected, rtol=1e-12, atol=0)
    assert seen[0][0] is wg and seen[0][1].weights is wg.last_weights  # the hook saw the committed state


def test_adaptive_hook_raising_keeps_the_observation():
    sched = AdaptiveScheduler()
    sched.next_update()
    sched.observe(loss_g=2.0, loss_d=4.0)
    seen, after = raising_then_recording(sched)
    assert sched.next_update() == "G"
    with pytest.raises(HookFailed):
        sched.observe(loss_g=3.0, loss_d=5.0)
    assert (sched.ratio_g, sched.ratio_d) == (abs(3.0 - 2.0) / 2.0, abs(5.0 - 4.0) / 4.0)  # eq. 4
    assert (sched.prev_loss_g, sched.prev_loss_d, sched.iteration) == (3.0, 5.0, 2)
    assert seen[0][1] is sched.last and seen[0][1].choice == "G" and after == []
    assert sched.next_update() == "G"  # r_d = 0.25 <= r_g = 0.5: a fresh choice, the pending one was consumed


@pytest.mark.filterwarnings("ignore::gan_optim.TwoTimescaleWarning")
def test_ttur_hook_raising_keeps_the_step_and_the_schedule():
    torch.manual_seed(0)
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_d=1.0, d_schedule=1.0)
    for p in D.parameters():
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in D.parameters()]
    seen, after = raising_then_recording(tt)
    with pytest.raises(HookFailed):
        tt.step_d()
    for p, b in zip(D.parameters(), before):
        torch.testing.assert_close(p.detach(), b - 1.0, rtol=0, atol=0)
    assert tt.steps_d == 1 and tt.lr_d == 0.5  # b(1) = 1 / (1 + 1)^1
    assert seen[0][1].steps == 1 and after == []


@pytest.mark.parametrize("atomic", [False, True])
def test_freeadv_hook_raising_keeps_the_step(atomic):
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)).double()
    D_ref, initial = copy.deepcopy(D), copy.deepcopy(D.state_dict())
    xr, xf = torch.rand(6, 3, dtype=torch.float64) - 0.5, torch.randn(6, 3, dtype=torch.float64)
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.1), replays=2, atomic=atomic)
    ref = FreeAdvDiscriminator(D_ref, torch.optim.SGD(D_ref.parameters(), lr=0.1), replays=2, atomic=atomic)
    seen, after = raising_then_recording(fa)
    rng = torch.random.get_rng_state()
    with pytest.raises(HookFailed):
        fa.step(xr, xf)
    torch.random.set_rng_state(rng)
    ref.step(xr, xf)  # the same call without hooks
    assert fa.steps == 1 and seen[0][1] is fa.last and after == []
    assert torch.equal(fa.delta, ref.delta)
    for (k, v), (_, w) in zip(D.state_dict().items(), D_ref.state_dict().items()):
        assert torch.equal(v, w), k
    assert not torch.equal(D.state_dict()["0.weight"], initial["0.weight"])  # D stepped
    assert math.isfinite(float(fa.last.loss_real))
