"""Both parts' weight gradients from one backward pass over a concatenated batch.

When D scores ``cat([fake, real])`` in one pass, the gradients of L_r and L_f
flow through the same graph. Activation gradients of disjoint samples do not
mix, so one backward of L_r + L_f gives every layer's output gradient, whose
rows belong to one part or the other; only the weight gradients have to be
formed per part. For a Linear / Conv / Embedding layer with input rows ``x``
and output-gradient rows ``gy`` that is ``gy[R]^T x[R]`` and ``gy[F]^T x[F]``:
the work of the one weight gradient a plain backward forms.

The engine is asked only for the gradients at the layers' outputs, so it
never forms the full weight gradients; each layer's two parts are formed in a
pre-hook on its backward node, while its saved input is still alive, so
activation gradients are freed as in a plain backward. Each part is then
carried from the layer's weight operand back to the parameters (spectral
norm, parametrizations, dtype casts) by one small autograd call per part.

The split is valid only if every D parameter sits in such a layer and no
operation mixes samples: :func:`plan` says why not when it is not, and
:class:`~gan_optim.aw.AWDiscriminatorLoss` checks each new graph structure
once against two plain backward passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch.autograd.graph import GradientEdge

from ._checks import plain_tensor

__all__ = ["SplitPlan", "plan", "split_gradients"]

_ACCUMULATE = "torch::autograd::AccumulateGrad"
_CONV, _ADDMM, _MM, _EMBEDDING = "ConvolutionBackward0", "AddmmBackward0", "MmBackward0", "EmbeddingBackward0"
_MUL = "MulBackward0"  # an activation times a parameter (e.g. BigGAN's attention gain gamma)
_LAYERS = (_CONV, _ADDMM, _MM, _EMBEDDING, _MUL)
# Nodes that only re-view a tensor; above the slice that picks a part they do not move rows.
_VIEWS = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "AliasBackward0",
                    "SqueezeBackward0", "SqueezeBackward1", "SqueezeBackward2", "UnsqueezeBackward0"})
_BATCH_NORMS = frozenset({"NativeBatchNormBackward0", "CudnnBatchNormBackward0", "MiopenBatchNormBackward0",
                          "NativeBatchNormLegitBackward0", "BatchNormWithUpdateBackward0"})
# Reductions: over the whole tensor (no ``_saved_dim``), or over dims that include the batch's (0).
_REDUCTIONS = frozenset({"SumBackward0", "SumBackward1", "MeanBackward0", "MeanBackward1", "StdBackward0",
                         "VarBackward0", "StdMeanBackward0", "VarMeanBackward0", "MaxBackward0", "MaxBackward1",
                         "MinBackward0", "MinBackward1", "AmaxBackward0", "AminBackward0", "NormBackward0",
                         "NormBackward1", "ProdBackward0", "ProdBackward1", "LogsumexpBackward0", "CatBackward0",
                         "StackBackward0"})

Edge = tuple[Any, int]


@dataclass
class _Layer:
    node: Any
    kind: str
    param_edges: list[tuple[int, Edge]]  #: (operand index in the node's inputs, edge to the parameter side)
    terminal: bool = False
    parts: list[tuple[torch.Tensor | None, torch.Tensor | None]] = field(default_factory=list)


@dataclass
class SplitPlan:
    """Where the two parts' rows are, and the layers whose weight gradients get split."""

    rows_real: tuple[int, int]
    rows_fake: tuple[int, int]
    layers: list[_Layer]
    key: tuple  #: the graph's structure: equal keys, equal validity of the split


def _next(node: Any) -> list[Edge]:
    return [e for e in node.next_functions if e[0] is not None]


def _rows(t: torch.Tensor) -> tuple[Edge, int, tuple[int, int]] | str | None:
    """``(edge of the tensor sliced, its batch size, (start, stop))`` if ``t`` is a batch slice of one.

    A string: ``t`` is a slice, but of rows that are not D's samples.
    """
    node: Any = t.grad_fn  # saved-tensor attributes (_saved_*) are per node type, unknown to the stubs
    nr = t.output_nr
    while node is not None and node.name() in _VIEWS:
        node, nr = node.next_functions[0]
    if node is None:
        return None
    name = node.name()
    if name == "SliceBackward0":
        if node._saved_dim != 0 or node._saved_step != 1:
            return None
        n = int(node._saved_self_sym_sizes[0])
        start, stop, _ = slice(node._saved_start, node._saved_end).indices(n)
    elif name == "SplitWithSizesBackward0":
        if node._saved_dim != 0:
            return None
        sizes = [int(s) for s in node._saved_split_sizes]
        n, start = sum(sizes), sum(sizes[:nr])
        stop = start + sizes[nr]
    elif name == "SplitBackward0":
        if node._saved_dim != 0:
            return None
        n, size = int(node._saved_self_sym_sizes[0]), int(node._saved_split_size)
        start, stop = nr * size, min(n, (nr + 1) * size)
    else:
        return None
    base: Edge = node.next_functions[0]
    # A view below the slice keeps rows only if it keeps the batch dimension (e.g. [N, 1] -> [N]).
    while base[0] is not None and base[0].name() in ("ViewBackward0", "UnsafeViewBackward0"):
        rows = int(base[0]._saved_self_sym_sizes[0])
        if rows != n:
            return f"D's output is a reshape of {rows} rows into the {n} scored ones"
        base = base[0].next_functions[0]
    if base[0] is None:
        return None
    return base, n, (start, stop)


def _mixes(node: Any, name: str) -> str | None:
    """Why ``node`` mixes samples across the batch, if it visibly does."""
    if name in _BATCH_NORMS:
        training = getattr(node, "_saved_training", True)
        return "batch normalisation in training mode" if training else None
    if name in _REDUCTIONS:
        if not hasattr(node, "_saved_dim"):
            return f"a reduction over the whole batch ({name})"
        dims = node._saved_dim
        dims = [dims] if isinstance(dims, int) else list(dims or ())
        if not dims or 0 in dims:
            return f"an operation along the batch dimension ({name})"
    return None


def _owner(node: Any, by_id: dict[int, str]) -> str | None:
    """The layer a node belongs to, named after a parameter it uses directly (e.g. a BatchNorm's weight)."""
    for e in _next(node):
        if e[0].name() == _ACCUMULATE and id(e[0].variable) in by_id:
            name = by_id[id(e[0].variable)]
            return "layer " + repr(name.rsplit(".", 1)[0]) if "." in name else f"parameter {name!r}"
    return None


def _batch_rows(node: Any, kind: str) -> int:
    if kind == _CONV:
        return int(node._saved_input.shape[0])
    if kind == _ADDMM:
        return int(node._saved_mat1.shape[0])
    if kind == _MM:
        return int(node._saved_self.shape[0])
    if kind == _MUL:
        return int(_mul_sides(node)[1].shape[0])
    return int(node._saved_indices.shape[0])


def _mul_sides(node: Any) -> tuple[int, torch.Tensor, torch.Tensor]:
    """For ``a * b`` with one parameter side: (index of the parameter side, the activation, the parameter)."""
    p_first = node.next_functions[0][0] is not None and node.next_functions[0][0].name() == _ACCUMULATE
    if p_first:
        return 0, node._saved_other, node._saved_self
    return 1, node._saved_self, node._saved_other


def _param_side(kind: str, node: Any) -> tuple[list[tuple[int, Edge]], list[Edge]]:
    """The node's parameter operands (index, edge) and its activation operands' edges."""
    nf = node.next_functions
    if kind == _CONV:
        params, acts = [(1, nf[1]), (2, nf[2])], [nf[0]]
    elif kind == _ADDMM:
        params, acts = [(0, nf[0]), (2, nf[2])], [nf[1]]
    elif kind == _MM:
        params, acts = [(1, nf[1])], [nf[0]]
    elif kind == _MUL:
        side = _mul_sides(node)[0]
        params, acts = [(side, nf[side])], [nf[1 - side]]
    else:
        params, acts = [(0, nf[0])], []
    return [(i, e) for i, e in params if e[0] is not None], [e for e in acts if e[0] is not None]


# What may stand between a layer and its parameter: spectral norm, parametrizations, casts, transposes.
_PARAMETER_SIDE_LIMIT = 64


def _parameter_only(edge: Edge, params: set[int]) -> bool:
    """Whether everything behind ``edge`` is computed from D's parameters alone (SN, casts, transposes)."""
    # Nodes are kept (not only their ids): a Python node object freed mid-walk could hand its id to another.
    stack, seen = [edge[0]], {}
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        if len(seen) > _PARAMETER_SIDE_LIMIT:
            return False
        name = node.name()
        if name == _ACCUMULATE:
            if id(node.variable) not in params:
                return False
            continue
        if name in (_CONV, _EMBEDDING):
            return False
        stack.extend(e[0] for e in _next(node))
    return True


def plan(d_real: torch.Tensor, d_fake: torch.Tensor, named_params: Sequence[tuple[str, torch.Tensor]],
         ) -> SplitPlan | str | None:
    """A :class:`SplitPlan`, or why the split does not apply.

    ``None``: the two outputs are not rows of one pass (two passes cost no
    more with two backward passes, nothing to gain). A string: they are, but
    something in D's graph keeps the split from being exact.
    """
    real, fake = _rows(d_real), _rows(d_fake)
    if real is None or fake is None:
        return None
    if isinstance(real, str) or isinstance(fake, str):
        return real if isinstance(real, str) else fake  # type: ignore[return-value]
    (base_r, n_r, rows_r), (base_f, n_f, rows_f) = real, fake
    if base_r[0] is not base_f[0] or base_r[1] != base_f[1] or n_r != n_f:
        return None
    if rows_r[0] < rows_f[1] and rows_f[0] < rows_r[1]:
        return "the real and fake rows overlap"
    n = n_r
    by_id = {id(p): name for name, p in named_params}
    ids = set(by_id)
    layers: dict[int, _Layer] = {}
    children: dict[int, list[Any]] = {}  # the activation side of each node
    has_layer: dict[int, bool] = {}
    names: list[str] = []
    # Iterative post-order walk of the activation side: a node is classified on the way down,
    # and on the way up learns whether a layer lies at or below it.
    stack: list[tuple[Any, bool]] = [(base_r[0], False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            below = any(has_layer[id(c)] for c in children[key])
            has_layer[key] = key in layers or below
            if key in layers:
                layers[key].terminal = not below
            continue
        if key in children:
            continue
        name = node.name()
        names.append(name)
        kids: list[Any] = []
        if name == _ACCUMULATE:
            if id(node.variable) in ids:
                return f"parameter {by_id[id(node.variable)]!r} is used outside a Linear, Conv or Embedding layer"
        elif name in _LAYERS and _is_layer(node, name, ids):
            rows = _batch_rows(node, name)
            if rows != n:
                return f"a {name} whose batch ({rows} rows) is not the outputs' ({n})"
            p_edges, acts = _param_side(name, node)
            layers[key] = _Layer(node, name, p_edges)
            kids = [e[0] for e in acts]
        else:
            why = _mixes(node, name)
            if why is not None:
                layer_name = _owner(node, by_id)
                return f"{layer_name} ({why})" if layer_name else why
            kids = [e[0] for e in _next(node)]
        children[key] = kids
        stack.append((node, True))
        stack.extend((c, False) for c in kids if id(c) not in children)
    if not layers:
        return "no Linear, Conv or Embedding layer found in D's graph"
    structure = (n, rows_r, rows_f, tuple(names), tuple(id(p) for _, p in named_params))
    return SplitPlan(rows_r, rows_f, list(layers.values()), structure)


def _is_layer(node: Any, kind: str, params: set[int]) -> bool:
    if kind == _EMBEDDING and node._saved_scale_grad_by_freq:
        return False
    if kind == _MUL:
        # Only a parameter used directly, broadcast over the batch (a gain): nothing else to carry it back.
        edges = [e for e in node.next_functions if e[0] is not None]
        if len(edges) != 2 or sum(e[0].name() == _ACCUMULATE and id(e[0].variable) in params for e in edges) != 1:
            return False
        _, act, par = _mul_sides(node)
        if act.dim() == 0 or (par.dim() == act.dim() and par.shape[0] != 1):
            return False
    p_edges, _ = _param_side(kind, node)
    return bool(p_edges) and all(_parameter_only(e, params) for _, e in p_edges)


def _weight_parts(layer: _Layer, gy: torch.Tensor, groups: Sequence[tuple[int, int]],
                  ) -> list[list[torch.Tensor]]:
    """For each parameter operand of the layer, its gradient from each row group."""
    node, kind = layer.node, layer.kind
    gy = plain_tensor(gy)
    out: list[list[torch.Tensor]] = [[] for _ in layer.param_edges]
    if kind == _CONV:
        x, w = plain_tensor(node._saved_input), plain_tensor(node._saved_weight)
        has_bias = any(i == 2 for i, _ in layer.param_edges)
        has_weight = any(i == 1 for i, _ in layer.param_edges)
        for a, b in groups:
            _, g_w, g_b = torch.ops.aten.convolution_backward(
                gy.narrow(0, a, b - a), x.narrow(0, a, b - a), w, node._saved_bias_sym_sizes_opt,
                node._saved_stride, node._saved_padding, node._saved_dilation, node._saved_transposed,
                node._saved_output_padding, node._saved_groups, [False, has_weight, has_bias])
            for k, (i, _) in enumerate(layer.param_edges):
                out[k].append(g_w if i == 1 else g_b)
    elif kind in (_ADDMM, _MM):
        x = plain_tensor(node._saved_mat1 if kind == _ADDMM else node._saved_self)
        alpha = node._saved_alpha if kind == _ADDMM else 1
        beta = node._saved_beta if kind == _ADDMM else 1
        for a, b in groups:
            rows = gy.narrow(0, a, b - a)
            for k, (i, _) in enumerate(layer.param_edges):
                if kind == _ADDMM and i == 0:
                    g = rows.sum(0)
                    out[k].append(g if beta == 1 else g * beta)
                else:
                    # (gy^T x)^T: W^T's gradient as a view of a contiguous [out, in] tensor, which is
                    # what W itself needs once the transpose is undone.
                    g = rows.t().mm(x.narrow(0, a, b - a)).t()
                    out[k].append(g if alpha == 1 else g * alpha)
    elif kind == _MUL:
        _, act, par = _mul_sides(node)
        act = plain_tensor(act)
        for a, b in groups:
            g = (gy.narrow(0, a, b - a) * act.narrow(0, a, b - a)).sum_to_size(par.shape)
            out[0].append(g)
    else:
        idx = plain_tensor(node._saved_indices)
        num = int(node._saved_weight_sym_argsize_0)
        pad = int(node._saved_padding_idx)
        for a, b in groups:
            rows = gy.narrow(0, a, b - a)
            g = rows.new_zeros((num, rows.shape[-1]))
            g.index_add_(0, idx.narrow(0, a, b - a).reshape(-1), rows.reshape(-1, rows.shape[-1]))
            if 0 <= pad < num:  # no padding row is saved as -1 or as a huge sentinel
                g[pad] = 0
            out[0].append(g)
    return out


def split_gradients(split: SplitPlan, total: torch.Tensor, params: Sequence[torch.Tensor], *,
                    retain_graph: bool) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """Per-part gradients of every parameter from one backward of ``total`` (``L_r + L_f``, scaled).

    A parameter that no layer uses gets ``None`` in both lists.
    """
    groups = (split.rows_real, split.rows_fake)
    handles = []

    def hook_for(layer: _Layer):
        def prehook(grad_outputs):
            gy = grad_outputs[0]
            if gy is not None:
                layer.parts = [tuple(p) for p in _weight_parts(layer, gy, groups)]  # type: ignore[misc]
            return None
        return prehook

    terminal = [layer for layer in split.layers if layer.terminal]
    try:
        for layer in split.layers:
            layer.parts = []
            if not layer.terminal:
                handles.append(layer.node.register_prehook(hook_for(layer)))
        grads = torch.autograd.grad(total, [GradientEdge(layer.node, 0) for layer in terminal],
                                    retain_graph=retain_graph, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():  # the saved weights require grad; the parts must not carry a graph
        for layer, gy in zip(terminal, grads):
            if gy is not None:
                layer.parts = [tuple(p) for p in _weight_parts(layer, gy, groups)]  # type: ignore[misc]

    index = {id(p): k for k, p in enumerate(params)}
    part_r: list[torch.Tensor | None] = [None] * len(params)
    part_f: list[torch.Tensor | None] = [None] * len(params)

    def add(parts: list[torch.Tensor | None], k: int, g: torch.Tensor) -> None:
        parts[k] = g if parts[k] is None else parts[k] + g  # type: ignore[operator]

    through_edges: list[GradientEdge] = []
    through_r: list[torch.Tensor] = []
    through_f: list[torch.Tensor] = []
    for layer in split.layers:
        for (_, edge), pair in zip(layer.param_edges, layer.parts):
            g_r, g_f = pair
            if g_r is None or g_f is None:
                continue
            node, transpose = edge[0], False
            if node.name() == "TBackward0" and node.next_functions[0][0].name() == _ACCUMULATE:
                node, transpose = node.next_functions[0][0], True  # a plain Linear's W^T: no autograd call
            if node.name() == _ACCUMULATE:
                k = index[id(node.variable)]
                add(part_r, k, g_r.t() if transpose else g_r)
                add(part_f, k, g_f.t() if transpose else g_f)
            else:
                through_edges.append(GradientEdge(*edge))
                through_r.append(g_r)
                through_f.append(g_f)
        layer.parts = []
    if through_edges:
        # Carry each part through spectral norm / parametrizations / casts: small graphs over theta only.
        for parts, grad_outputs, keep in ((part_r, through_r, True), (part_f, through_f, retain_graph)):
            carried = torch.autograd.grad(through_edges, list(params), grad_outputs, retain_graph=keep,
                                          allow_unused=True)
            for k, g in enumerate(carried):
                if g is not None:
                    add(parts, k, g)
    return part_r, part_f
