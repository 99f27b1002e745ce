"""The operator counter of the benchmark, and the per-step operator counts it pins."""

import torch

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
