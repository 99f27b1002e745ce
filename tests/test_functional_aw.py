"""aw_weights against Algorithm 1 written out by hand, and Theorem 2's geometry."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, example, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import gan_optim.functional as F
from gan_optim import testing

from _reference import algorithm1

ATOL = 1e-10


# (grad_real, grad_fake, score_real, score_fake, expected case)
CASES = [
    ([1.0, 0.0, 2.0], [-3.0, 1.0, -1.0], 0.3, 0.6, 1),   # s_r < alpha1, obtuse
    ([1.0, 0.5, 2.0], [3.0, 1.0, 1.0], 0.3, 0.6, 2),     # s_r < alpha1, acute
    ([1.0, 0.0, 2.0], [-3.0, 1.0, -1.0], 0.9, 0.2, 3),   # s_r > alpha2 and > s_f - delta, obtuse
    ([1.0, 0.5, 2.0], [3.0, 1.0, 1.0], 0.9, 0.2, 4),     # acute
    ([1.0, 0.0, 2.0], [-3.0, 1.0, -1.0], 0.6, 0.4, 5),   # alpha1 <= s_r <= alpha2: bisector
    ([1.0, 0.0, 2.0], [-3.0, 1.0, -1.0], 0.8, 0.9, 1),   # s_r < s_f - delta even though s_r > alpha2
]


@pytest.mark.parametrize("gr,gf,sr,sf,case", CASES)
def test_each_case_matches_algorithm1(gr, gf, sr, sf, case):
    exp_r, exp_f, exp_case = algorithm1(gr, gf, sr, sf)
    assert exp_case == case
    w_r, w_f = F.aw_weights(torch.tensor(gr, dtype=torch.float64), torch.tensor(gf, dtype=torch.float64), sr, sf)
    assert w_r.dim() == 0 and w_f.dim() == 0
    assert float(w_r) == pytest.approx(exp_r, abs=ATOL)
    assert float(w_f) == pytest.approx(exp_f, abs=ATOL)


def test_case_numbers_from_geometry():
    for gr, gf, sr, sf, case in CASES:
        gr_t, gf_t = torch.tensor(gr, dtype=torch.float64), torch.tensor(gf, dtype=torch.float64)
        nr, nf, cos = F.gradient_geometry(gr_t, gf_t)
        _, _, got = F.aw_weights_from_geometry(nr, nf, cos, torch.tensor(sr, dtype=torch.float64),
                                               torch.tensor(sf, dtype=torch.float64))
        assert int(got) == case


def test_hyperparameters_are_used():
    gr, gf = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([-1.0, 0.2], dtype=torch.float64)
    # s_r = 0.6 is case 5 with alpha1 = 0.5 but case 1 with alpha1 = 0.7.
    exp = algorithm1(gr.numpy(), gf.numpy(), 0.6, 0.3, a1=0.7, eps=0.1)
    w_r, w_f = F.aw_weights(gr, gf, 0.6, 0.3, alpha1=0.7, eps=0.1)
    assert exp[2] == 1
    assert (float(w_r), float(w_f)) == pytest.approx(exp[:2], abs=ATOL)


@pytest.mark.parametrize("delta,case", [(0.0625, 1), (0.125, 5), (0.25, 3)])
def test_tie_at_s_f_minus_delta_is_the_balanced_case(delta, case):
    # s_r = 0.875 > alpha2; s_f - delta is 0.9375, 0.875 (a tie: neither strict test holds) or 0.75.
    gr, gf = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64), torch.tensor([-3.0, 1.0, -1.0], dtype=torch.float64)
    exp = algorithm1(gr.numpy(), gf.numpy(), 0.875, 1.0, delta=delta)
    assert exp[2] == case
    w_r, w_f = F.aw_weights(gr, gf, 0.875, 1.0, delta=delta)
    assert (float(w_r), float(w_f)) == pytest.approx(exp[:2], abs=ATOL)


vec = st.integers(2, 6).flatmap(lambda n: st.tuples(
    arrays(np.float64, n, elements=st.floats(-10, 10, allow_nan=False)),
    arrays(np.float64, n, elements=st.floats(-10, 10, allow_nan=False))))
score = st.floats(0.0, 1.0)


@settings(deadline=None)
@given(vec, score, score)
def test_matches_algorithm1_everywhere(gs, sr, sf):
    gr, gf = gs
    assume(np.linalg.norm(gr) >= 1e-3 and np.linalg.norm(gf) >= 1e-3)  # zero gradients: tested separately
    exp_r, exp_f, _ = algorithm1(gr, gf, sr, sf)
    w_r, w_f = F.aw_weights(torch.from_numpy(gr), torch.from_numpy(gf), sr, sf)
    assert float(w_r) == pytest.approx(exp_r, rel=1e-9, abs=1e-9)
    assert float(w_f) == pytest.approx(exp_f, rel=1e-9, abs=1e-9)


def _angle(a, b):
    return math.degrees(math.acos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1)))


obtuse_pairs = testing.gradient_pairs(angle=(91.0, 179.0), norm_exponent=(-30, 30), zeros=False)


@settings(deadline=None)
@given(obtuse_pairs)
def test_case1_direction_is_orthogonal_to_fake_gradient(pair):
    assume(float(pair[0] @ pair[1]) < 0)
    testing.check_case_direction(F.aw_weights, *pair, case=1)  # Theorem 2.2


@settings(deadline=None)
@given(obtuse_pairs)
def test_case3_direction_is_orthogonal_to_real_gradient(pair):
    assume(float(pair[0] @ pair[1]) < 0)
    testing.check_case_direction(F.aw_weights, *pair, case=3)


@settings(deadline=None)
@given(testing.gradient_pairs(angle=(0.0, 179.0), norm_exponent=(-30, 30), zeros=False))
def test_case5_direction_is_the_angle_bisector(pair):
    testing.check_case_direction(F.aw_weights, *pair, case=5)


@settings(deadline=None)
@given(testing.gradient_pairs(), testing.scores(), testing.scores())
def test_weights_finite_down_to_subnormal_norms_and_exact_zeros(pair, sr, sf):
    testing.check_aw_finite(F.aw_weights, *pair, sr, sf)


@settings(deadline=None)
@given(testing.gradient_pairs(norm_exponent=(-100, 100), zeros=False), testing.scores(), testing.scores())
def test_weights_scale_as_one_over_the_gradient(pair, sr, sf):
    testing.check_aw_scale_behaviour(F.aw_weights, *pair, sr, sf)


any_finite = st.floats(allow_nan=False, allow_infinity=False)
finite_vec = st.integers(1, 5).flatmap(lambda n: st.tuples(
    arrays(np.float64, n, elements=any_finite), arrays(np.float64, n, elements=any_finite)))


@settings(deadline=None)
@given(finite_vec, score, score, st.sampled_from([torch.float64, torch.float32]))
def test_weights_finite_for_every_finite_input(gs, sr, sf, dtype):
    gr, gf = (torch.from_numpy(g).to(dtype) for g in gs)
    assume(bool(torch.isfinite(gr).all() and torch.isfinite(gf).all()))  # float32 casts that overflow are not finite
    w_r, w_f = F.aw_weights(gr, gf, sr, sf)
    assert torch.isfinite(w_r) and torch.isfinite(w_f)
    # Every branch adds eps to a non-negative term (the projections are taken only when obtuse).
    assert float(w_r) >= 0.05 * (1 - 1e-6) and float(w_f) >= 0.05 * (1 - 1e-6)
    assert w_r.dtype == dtype and w_f.dtype == dtype


@pytest.mark.parametrize("sr,sf", [(0.3, 0.6), (0.9, 0.2), (0.6, 0.4)])
def test_zero_gradient_gets_eps_weight(sr, sf):
    zero = torch.zeros(3, dtype=torch.float64)
    g = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
    w_r, w_f = F.aw_weights(zero, g, sr, sf)
    assert float(w_r) == pytest.approx(0.05)  # no direction: 1/|g| term is 0
    assert float(w_f) in (pytest.approx(0.05), pytest.approx(0.05 + 1 / 5.0))
    w_r, w_f = F.aw_weights(zero, zero, sr, sf)
    assert (float(w_r), float(w_f)) == (pytest.approx(0.05), pytest.approx(0.05))


def test_gradient_geometry_matches_numpy():
    gr, gf = torch.randn(50, dtype=torch.float64) * 1e3, torch.randn(50, dtype=torch.float64) * 1e-3
    nr, nf, cos = F.gradient_geometry(gr, gf)
    a, b = gr.numpy(), gf.numpy()
    assert float(nr) == pytest.approx(np.linalg.norm(a), rel=1e-12)
    assert float(nf) == pytest.approx(np.linalg.norm(b), rel=1e-12)
    assert float(cos) == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-12)
    assert float(F.angle_degrees(cos)) == pytest.approx(_angle(a, b), abs=1e-9)


# ------------------------------------------------ aw_combine_ on per-parameter lists
shapes = st.lists(st.tuples(st.integers(1, 4), st.integers(1, 3)), min_size=1, max_size=4)


@settings(deadline=None, max_examples=200)
@example([(1, 1)], 1212116979, 0.0, 0.0, -4.0, -4.0)  # a cancelling sum CI once drew
@given(shapes, st.integers(0, 2 ** 31 - 1), score, score, st.floats(-12, 12), st.floats(-12, 12))
def test_aw_combine_equals_algorithm1_on_the_concatenated_gradients(shape_list, seed, sr, sf, exp_r, exp_f):
    gen = torch.Generator().manual_seed(seed)
    g_r = [torch.randn(*s, generator=gen, dtype=torch.float64) * 10.0 ** exp_r for s in shape_list]
    g_f = [torch.randn(*s, generator=gen, dtype=torch.float64) * 10.0 ** exp_f for s in shape_list]
    flat_r = np.concatenate([g.reshape(-1).numpy() for g in g_r])
    flat_f = np.concatenate([g.reshape(-1).numpy() for g in g_f])
    w_r, w_f, case = algorithm1(flat_r, flat_f, sr, sf)
    combined = [w_r * a + w_f * b for a, b in zip(g_r, g_f)]  # before aw_combine_ changes the lists
    # The sum can cancel (case 1 on parallel parts), so rounding is bounded by the terms, not by the sum.
    terms = [float((w_r * a).abs().max() + (w_f * b).abs().max()) for a, b in zip(g_r, g_f)]
    step = F.aw_combine_(g_r, g_f, torch.tensor(sr, dtype=torch.float64), torch.tensor(sf, dtype=torch.float64))
    assert int(step.case) == case
    assert [float(w) for w in step.weights] == pytest.approx([w_r, w_f], rel=1e-9)
    assert float(step.cos) == pytest.approx(flat_r @ flat_f / np.linalg.norm(flat_r) / np.linalg.norm(flat_f),
                                            abs=1e-12)
    for got, expected, term in zip(g_r, combined, terms):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12 * term)


@pytest.mark.parametrize("dtype,scale", [(torch.float32, 1e20), (torch.float32, 1e-20), (torch.float16, 3e4),
                                         (torch.bfloat16, 1e30)])
def test_aw_combine_is_finite_and_exact_for_extreme_finite_gradients(dtype, scale):
    """No float64 copy, and still no overflow: norms far beyond the dtype's range, or far below 1."""
    gen = torch.Generator().manual_seed(0)

    def part():
        return [(torch.randn(*s, generator=gen).clamp(-2, 2) * scale).to(dtype) for s in ((40, 3), (7,))]

    g_r, g_f = part(), part()
    assert all(bool(torch.isfinite(g).all()) for g in g_r + g_f)
    flat_r = np.concatenate([g.double().reshape(-1).numpy() for g in g_r])
    flat_f = np.concatenate([g.double().reshape(-1).numpy() for g in g_f])
    w_r, w_f, case = algorithm1(flat_r, flat_f, 0.3, 0.6)
    expected = [w_r * a.double() + w_f * b.double() for a, b in zip(g_r, g_f)]
    step = F.aw_combine_(g_r, g_f, torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64))
    assert int(step.case) == case and bool(torch.isfinite(step.weights).all())
    assert [float(w) for w in step.weights] == pytest.approx([w_r, w_f], rel=1e-5)
    rtol = {torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}[dtype]
    for got, exp in zip(g_r, expected):
        assert bool(torch.isfinite(got).all())
        torch.testing.assert_close(got.double(), exp, rtol=rtol, atol=rtol * float(exp.abs().max()))


def test_aw_combine_with_a_zero_part_gives_it_eps_and_reports_a_right_angle():
    g_r = [torch.zeros(3, dtype=torch.float64)]
    g_f = [torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)]
    step = F.aw_combine_(g_r, g_f, torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64))
    assert float(step.cos) == 0.0 and int(step.case) == 2
    assert [float(w) for w in step.weights] == pytest.approx([0.05, 0.05])
    torch.testing.assert_close(g_r[0], 0.05 * torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64))
