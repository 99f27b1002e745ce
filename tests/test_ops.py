"""The operator counter of the benchmark, and the per-step operator counts it pins."""

import pytest
import torch

from gan_optim_benchmarks import bench, cases
from gan_optim_benchmarks.ops import count_ops, host_syncs, op_counts


def test_counts_forward_backward_and_scalar_reads():
    x = torch.randn(3, requires_grad=True)

    def step():
        loss = (x * 2).sum()           # mul, sum
        loss.backward()                # ones_like, expand (sum's backward), mul (mul's backward), detach (.grad)
        return float(loss.detach())    # detach, _local_scalar_dense

    counts = op_counts(step)
    assert counts == {"aten.mul": 2, "aten.sum": 1, "aten.ones_like": 1, "aten.expand": 1, "aten.detach": 2,
                      "aten._local_scalar_dense": 1}
    x.grad = None
    assert count_ops(step) == 8
    x.grad = None
    assert host_syncs(step) == 1


def test_counts_the_optimizer_step():
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.5)
    p.grad = torch.ones(2)
    counts = op_counts(opt.step)
    assert sum(counts.values()) >= 1 and torch.equal(p.detach(), torch.full((2,), 0.5))


# ------------------------------------------------------------- per-step counts
#: The models whose step counts are pinned: a ResNet D with torch's spectral norm and a BigGAN-structured
#: projection D with its own power-iteration spectral norm (--quick sizes: the counts do not depend on width).
PINNED_MODELS = ("resnet-sn", "biggan-like")


def _row_ops(component, model):
    s = bench.build_models(model, bench.QUICK, torch.device("cpu"))
    plain, candidate, units = cases.make_case(component, s)
    return bench.steady_state_ops(plain, candidate)


@pytest.mark.parametrize("model", PINNED_MODELS)
def test_counts_are_deterministic_and_the_control_equals_plain(model):
    s = bench.build_models(model, bench.QUICK, torch.device("cpu"))
    plain, _, _ = cases.make_case("null", s)
    plain()
    first = op_counts(plain)
    assert op_counts(plain) == first and sum(first.values()) > 300
    assert _row_ops("null", model)[0] == _row_ops("null", model)[1]


@pytest.mark.parametrize("model", PINNED_MODELS)
def test_two_timescale_adds_no_operator(model):
    plain_ops, ttur_ops = _row_ops("ttur", model)
    assert ttur_ops == plain_ops


def test_bench_reports_the_counts_of_count_ops():
    (row,) = bench.run_bench(bench.QUICK, models=["resnet-sn"], components=["aw"], measure_time=False,
                             measure_memory=False)
    assert (row.plain_ops, row.candidate_ops) == _row_ops("aw", "resnet-sn")
    assert row.ops_ratio == pytest.approx(row.candidate_ops / row.plain_ops)


#: AW's targets: aten operators per step over the plain step's (forward, backward, Adam step).
AW_OPS_TARGETS = {"mlp": 1.3, "dcgan32": 1.3, "resnet-sn": 1.15, "biggan-like": 1.15}


@pytest.mark.parametrize("model", list(AW_OPS_TARGETS))
def test_aw_step_dispatches_within_its_target(model):
    plain_ops, aw_ops = _row_ops("aw", model)
    assert aw_ops <= AW_OPS_TARGETS[model] * plain_ops, (model, plain_ops, aw_ops)


@pytest.mark.parametrize("model", list(AW_OPS_TARGETS))
def test_aw_adds_a_constant_not_a_cost_per_parameter(model):
    """The geometry and the weighting are a fixed number of foreach calls over the whole parameter list.

    AW's two backward passes save the plain backward's per-parameter sum of the two halves' gradients, so
    the surplus is at most a constant whatever the number of parameters (6 for the MLP, 23 for the
    BigGAN-structured D).
    """
    plain_ops, aw_ops = _row_ops("aw", model)
    assert aw_ops - plain_ops <= 50, (model, plain_ops, aw_ops)


@pytest.mark.parametrize("model", ["mlp", "resnet-sn"])
def test_aw_step_reads_one_scalar_at_most(model):
    """One host synchronisation per AW step (the finiteness check of nonfinite="raise"), none with a scaler."""
    s = bench.build_models(model, bench.QUICK, torch.device("cpu"))
    plain, candidate, _ = cases.make_case("aw", s)
    bench.steady_state_ops(plain, candidate)
    assert host_syncs(candidate) <= host_syncs(plain) + 1

    from gan_optim import AWDiscriminatorLoss

    aw = AWDiscriminatorLoss(s.D, scaler=torch.amp.GradScaler("cpu"))

    def scaled_step():
        s.opt_d.zero_grad(set_to_none=True)
        aw.scaler.scale(aw(s.x_real, s.x_fake)).backward()

    scaled_step()
    syncs = host_syncs(scaled_step)
    s.opt_d.zero_grad(set_to_none=True)
    assert syncs == 0


#: from_outputs on one concatenated pass, against the plain concatenated step: what it dispatches today
#: (the split carries each part through spectral norm's backward separately; docs/PERFORMANCE.md names the
#: operators above the issue's 1.15 target), pinned so that it cannot grow unnoticed.
CONCAT_OPS_CEILINGS = {"resnet-sn": 1.36, "biggan-like": 1.37}


@pytest.mark.parametrize("model", list(CONCAT_OPS_CEILINGS))
def test_from_outputs_on_a_concatenated_pass_stays_under_its_ceiling(model):
    plain_ops, concat_ops = _row_ops("aw-concat", model)
    assert concat_ops <= CONCAT_OPS_CEILINGS[model] * plain_ops, (model, plain_ops, concat_ops)


@pytest.mark.parametrize("model", PINNED_MODELS)
def test_wegan_adds_about_ten_operators(model):
    """The weights (sigmoid, 1 - p, times ln eta, softmax), the weighted sum and its backward, and the
    finiteness check of D's outputs (one host read); the hook statistics only when a hook is registered."""
    plain_ops, wegan_ops = _row_ops("wegan", model)
    assert wegan_ops - plain_ops <= 12, (model, plain_ops, wegan_ops)
