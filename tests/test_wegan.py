"""WeGAN weights and WeightedGeneratorLoss against the formula written out."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, strategies as st
from hypothesis.extra.numpy import arrays

import gan_optim.functional as F
from gan_optim import WeightedGeneratorLoss

probs = st.integers(1, 40).flatmap(lambda n: arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
etas = st.floats(1e-6, 1.0)


def weights_by_hand(p, eta):
    """Pantazis et al., Algorithm 1: w_i = eta^(1-p_i) / sum_j eta^(1-p_j)."""
    raw = [eta ** (1 - pi) for pi in p]
    return np.array(raw) / sum(raw)


@given(probs, etas)
def test_matches_the_written_formula(p, eta):
    w = F.wegan_weights(torch.from_numpy(p), eta).numpy()
    np.testing.assert_allclose(w, weights_by_hand(p, eta), rtol=1e-9, atol=1e-12)


@given(probs, etas)
def test_positive_and_sum_to_one(p, eta):
    w = F.wegan_weights(torch.from_numpy(p), eta)
    assert bool((w > 0).all())
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)


@given(probs, st.floats(1e-6, 0.999))
def test_monotone_in_p_for_eta_below_one(p, eta):
    w = F.wegan_weights(torch.from_numpy(p), eta).numpy()
    order = np.argsort(p, kind="stable")
    ws, ps = w[order], p[order]
    for i in range(len(ps) - 1):
        if ps[i + 1] > ps[i]:
            assert ws[i + 1] >= ws[i]  # samples that fool D more get more weight
        else:
            assert ws[i + 1] == pytest.approx(ws[i], rel=1e-12)


@given(probs)
def test_uniform_for_eta_one(p):
    w = F.wegan_weights(torch.from_numpy(p), 1.0)
    np.testing.assert_allclose(w.numpy(), 1.0 / len(p), rtol=1e-12)


@given(st.integers(1, 40), st.floats(0.0, 1.0), etas)
def test_uniform_for_equal_p(n, p, eta):
    w = F.wegan_weights(torch.full((n,), p, dtype=torch.float64), eta)
    np.testing.assert_allclose(w.numpy(), 1.0 / n, rtol=1e-12)


@given(st.integers(1, 40), etas)
def test_uniform_at_equilibrium(n, eta):
    w = F.wegan_weights(torch.full((n,), 0.5, dtype=torch.float64), eta)  # D(x) = 1/2 everywhere
    np.testing.assert_allclose(w.numpy(), 1.0 / n, rtol=1e-12)
    assert float(F.effective_sample_size(w)) == pytest.approx(n)
    assert float(F.weight_variance(w)) == pytest.approx(0.0, abs=1e-20)


@given(st.integers(1, 30).flatmap(lambda n: arrays(np.float64, n, elements=st.floats(-8, 8))), etas)
def test_theorem1_weighted_saturating_loss_is_not_above_the_mean(d, eta):
    """Theorem 1 per batch: sum_i w_i log(1 - D(G(z_i))) <= mean_i log(1 - D(G(z_i)))."""
    d_t = torch.from_numpy(d)
    weighted = float(WeightedGeneratorLoss(eta, loss="saturating")(d_t))
    plain = float(np.mean(np.log1p(-1 / (1 + np.exp(-d)))))
    assert weighted <= plain + 1e-9


@pytest.mark.parametrize("loss,per_sample", [
    ("ns", lambda d: np.logaddexp(0, -d)),
    ("saturating", lambda d: -np.logaddexp(0, d)),
    ("hinge", lambda d: -d),
    ("wgan", lambda d: -d),
])
@pytest.mark.parametrize("shape", [(7,), (7, 1)])
def test_value_and_gradient(loss, per_sample, shape):
    d_np = np.linspace(-3, 3, 7)
    d = torch.tensor(d_np, dtype=torch.float64).reshape(shape).requires_grad_(True)
    wg = WeightedGeneratorLoss(0.1, loss=loss)
    value = wg(d)
    w = weights_by_hand(1 / (1 + np.exp(-d_np)), 0.1)
    assert float(value.detach()) == pytest.approx(float(np.sum(w * per_sample(d_np))), abs=1e-12)
    value.backward()
    # Weights are constants: d(sum w_i l_i)/d d_i = w_i l_i'(d_i), checked by central differences of l.
    h = 1e-6
    numeric = w * (per_sample(d_np + h) - per_sample(d_np - h)) / (2 * h)
    np.testing.assert_allclose(d.grad.reshape(-1).numpy(), numeric, atol=1e-7)
    np.testing.assert_allclose(wg.last_weights.numpy(), w, rtol=1e-10)
    assert float(wg.effective_sample_size) == pytest.approx(1 / np.sum(w ** 2))
    assert float(wg.weight_variance) == pytest.approx(np.mean((w - 1 / 7) ** 2))


def test_eta_one_is_the_plain_mean_loss():
    d = torch.randn(16, dtype=torch.float64)
    value = WeightedGeneratorLoss(1.0, loss="ns")(d)
    assert float(value) == pytest.approx(float(torch.nn.functional.softplus(-d).mean()), abs=1e-12)


def test_extreme_scores_stay_finite():
    d = torch.tensor([-1e4, 0.0, 1e4], dtype=torch.float64)
    w = F.wegan_weights(torch.sigmoid(d), 1e-300)
    assert torch.isfinite(w).all() and float(w.sum()) == pytest.approx(1.0)
    assert math.isfinite(float(WeightedGeneratorLoss(1e-300)(d)))


@given(probs, etas, st.integers(0, 40))
def test_a_normaliser_over_a_larger_batch_gives_that_batchs_weights(p, eta, split):
    """logsumexp= normalises over a larger (global) batch: each part's weights are its slice of the whole's."""
    assume(split < len(p))
    whole = torch.from_numpy(p)
    logits_whole = (1 - whole) * math.log(eta)
    part = F.wegan_weights(whole[split:], eta, logsumexp=lambda logits: torch.logsumexp(logits_whole, 0))
    np.testing.assert_allclose(part.numpy(), weights_by_hand(p, eta)[split:], rtol=1e-9, atol=1e-300)


def test_check_values_false_lets_non_finite_probabilities_through():
    p = torch.tensor([0.2, math.nan, 0.7])
    with pytest.raises(FloatingPointError, match="fake_prob"):
        F.wegan_weights(p, 0.1)
    assert torch.isnan(F.wegan_weights(p, 0.1, check_values=False)).all()


def test_the_loss_propagates_non_finite_scores_with_nonfinite_propagate():
    value = WeightedGeneratorLoss(0.1, nonfinite="propagate")(torch.tensor([0.5, math.nan, -1.0]))
    assert not math.isfinite(float(value))
