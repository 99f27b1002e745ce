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

When the split is exact is decided from the graph's structure, never from
values (a branch that mixes samples behind a gain that is zero today is
refused all the same): every node on a path from a layer's output to D's
scores must be an operation :data:`_NODES` knows to act on each sample alone,
with the batch dimension first; every D parameter must sit in a layer whose
weight operand is computed from parameters alone. A structure that passes is
also checked once against two plain backward passes, at the precision that
ran (:class:`SplitBackward`).

Every read of autograd internals (saved tensors, output shapes) goes through
:data:`_NODES` and :func:`_saved`: an unknown node on a path, a renamed or
missing attribute, a saved tensor that is ``None`` mean two backward passes
with a one-time warning, never an error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch.autograd.graph import GradientEdge

from ._checks import plain_tensor

__all__ = ["SplitBackward", "SplitPlan", "plan", "split_gradients"]


# ------------------------------------------------ one split, checked once
Grads = list[torch.Tensor | None]


class SplitBackward:
    """Both parts' gradients from one split backward where it is exact, else from two backward passes.

    Each new graph structure is checked once against two plain backward
    passes, at the precision that ran; a structure that fails, or any reason
    :func:`plan` gives, falls back for good with a one-time warning.
    """

    #: Structures remembered at most (shapes may vary forever).
    MAX_STRUCTURES = 32
    #: The check's tolerance, in units of the rounding of the lowest precision that ran.
    ROUNDINGS = 8.0

    def __init__(self) -> None:
        self.checked: set[tuple] = set()
        self.refused: dict[tuple, str] = {}
        self.warned: set[str] = set()

    def per_part_gradients(self, d_real: torch.Tensor, d_fake: torch.Tensor, loss_r: torch.Tensor,
                           loss_f: torch.Tensor, names: Sequence[str], params: Sequence[torch.Tensor],
                           scale: float, retain_graph: bool) -> tuple[Grads, Grads]:
        """The two parts' gradients of ``loss_r * scale`` and ``loss_f * scale``; ``None`` where unused."""
        def scaled(loss: torch.Tensor) -> torch.Tensor:
            return loss if scale == 1.0 else loss * scale

        def two_passes() -> tuple[Grads, Grads]:
            g_r = torch.autograd.grad(scaled(loss_r), params, retain_graph=True, allow_unused=True)
            g_f = torch.autograd.grad(scaled(loss_f), params, retain_graph=retain_graph, allow_unused=True)
            return list(g_r), list(g_f)

        split = plan(d_real, d_fake, list(zip(names, params)))
        if isinstance(split, SplitPlan) and split.key in self.refused:
            split = self.refused[split.key]
        if not isinstance(split, SplitPlan):
            if split is not None:
                self._warn(split)
            return two_passes()
        total = scaled(loss_r + loss_f)
        if split.key in self.checked:
            return split_gradients(split, total, params, retain_graph=retain_graph)
        # A graph structure seen for the first time: check the split against two backward passes once.
        parts = split_gradients(split, total, params, retain_graph=True)
        ref_r, ref_f = two_passes()
        present = [g for g in (*ref_r, *ref_f) if g is not None]
        if present and not bool(torch.isfinite(torch.stack(torch._foreach_norm(present))).all()):
            return ref_r, ref_f  # an overflowing step (AMP) decides nothing: check on the next one
        rtol = max(1e-3, self.ROUNDINGS * max([split.eps] + [torch.finfo(g.dtype).eps for g in present]))
        mismatch = [names[k] for k in sorted(set(differing_gradients(parts[0], ref_r, rtol))
                                             | set(differing_gradients(parts[1], ref_f, rtol)))]
        if len(self.checked) + len(self.refused) >= self.MAX_STRUCTURES:
            self.checked.clear()
            self.refused.clear()
        if mismatch:
            self.refused[split.key] = (
                f"an operation in D's graph mixes samples across the batch (the split gradients of "
                f"{', '.join(repr(n) for n in mismatch[:3])} differ from two backward passes)")
            self._warn(self.refused[split.key])
            return ref_r, ref_f
        self.checked.add(split.key)
        return parts

    def _warn(self, why: str) -> None:
        if why in self.warned:
            return
        self.warned.add(why)
        # stacklevel: here, per_part_gradients, the loss's delegation, from_outputs, its caller.
        warnings.warn(f"AWDiscriminatorLoss.from_outputs: one backward pass cannot give both parts' gradients "
                      f"here: {why}; using two backward passes through the shared graph (slower, same result)",
                      RuntimeWarning, stacklevel=5)


def differing_gradients(split: Sequence[torch.Tensor | None], reference: Sequence[torch.Tensor | None],
                        rtol: float) -> list[int]:
    """Indices where the split gradients differ from the reference by more than ``rtol`` of its largest entry."""
    scales = [float(b.abs().max()) for b in reference if b is not None and b.numel()]
    floor = 1e-6 * max(scales, default=0.0)
    bad = []
    for k, (a, b) in enumerate(zip(split, reference)):
        if a is None or b is None:
            if (a is None) != (b is None):
                bad.append(k)
            continue
        if not a.numel():
            continue
        diff = (a.double() - b.double()).abs().nan_to_num(0.0)
        if float(diff.max()) > rtol * max(float(b.abs().max()), floor):
            bad.append(k)
    return bad


# ------------------------------------------------------------------ the plan
@dataclass
class _Layer:
    node: Any
    kind: str
    param_edges: list[tuple[int, Edge]]  #: (operand index in the node's inputs, edge to the parameter side)
    saved: dict[str, Any]  #: what the weight gradients need, read while planning (dropped once used)
    direct: list[bool]  #: per parameter edge: a plain Linear's W^T, whose part is formed as W's
    terminal: bool = False
    parts: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


@dataclass
class SplitPlan:
    """Where the two parts' rows are, and the layers whose weight gradients get split."""

    rows_real: tuple[int, int]
    rows_fake: tuple[int, int]
    layers: list[_Layer]
    key: tuple  #: the graph's structure: equal keys, equal validity of the split
    eps: float  #: the relative rounding of the lowest precision the layers ran at


def plan(d_real: torch.Tensor, d_fake: torch.Tensor, named_params: Sequence[tuple[str, torch.Tensor]],
         ) -> SplitPlan | str | None:
    """A :class:`SplitPlan`, or why the split does not apply.

    ``None``: the two outputs are not from one pass (two passes cost no more
    with two backward passes, nothing to gain). A string: they are, but the
    split would not be exact, or D's graph is not as expected.
    """
    try:
        return _plan(d_real, d_fake, named_params)
    except (_Unexpected, AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        return f"D's autograd graph is not as this version of gan_optim expects ({type(e).__name__}: {e})"


def _plan(d_real: torch.Tensor, d_fake: torch.Tensor, named_params: Sequence[tuple[str, torch.Tensor]],
          ) -> SplitPlan | str | None:
    source_r, picked_r = _source(d_real)
    source_f, picked_f = _source(d_fake)
    if source_r is None or source_r is not source_f:
        return None
    real, fake = _rows(d_real), _rows(d_fake)
    if isinstance(real, str) or isinstance(fake, str):
        return real if isinstance(real, str) else fake  # type: ignore[return-value]
    if real is None or fake is None or real[0][0] is not fake[0][0] or real[0][1] != fake[0][1] or real[1] != fake[1]:
        how = next((p for p in picked_r + picked_f if p not in _VIEWS), "a view")
        return (f"d_real and d_fake are picked from one output of D by {how}, not as two row slices "
                f"(out[:n] / out[n:] or torch.split)")
    (base, n, rows_r), (_, _, rows_f) = real, fake
    if rows_r[0] < rows_f[1] and rows_f[0] < rows_r[1]:
        return "the real and fake rows overlap"
    return _walk(base[0], n, rows_r, rows_f, named_params)


def _source(t: torch.Tensor) -> tuple[Any, list[str]]:
    """The node below every view, slice and pick of ``t``, and the names of those."""
    node, names = t.grad_fn, []
    while node is not None and node.name() in _PICKS:
        names.append(node.name())
        edges = _next(node)
        if not edges:
            return None, names
        node = edges[0][0]
    return node, names


def _rows(t: torch.Tensor) -> tuple[Edge, int, tuple[int, int]] | str | None:
    """``(edge of the tensor sliced, its batch size, (start, stop))`` if ``t`` is a row slice of one.

    A string: ``t`` is a row slice, but of rows that are not D's samples.
    """
    node: Any = t.grad_fn
    nr = t.output_nr
    while node is not None and node.name() in _VIEWS:
        node, nr = node.next_functions[0]
    kind = None if node is None else _kind(node)
    if kind is None or kind.role != "slice" or _dims(node, kind, 1 << 30) != [0]:
        return None
    if node.name() == "SliceBackward0":
        if _saved(node, "step") != 1:
            return None
        n = int(_saved(node, "sizes")[0])
        bounds = [_saved(node, key, optional=True) for key in ("start", "end")]  # negative ones too (out[-n:])
        start, stop, _ = slice(*(None if b is None else _signed(b) for b in bounds)).indices(n)
    elif node.name() == "SplitWithSizesBackward0":
        sizes = [int(s) for s in _saved(node, "split_sizes")]
        n, start = sum(sizes), sum(sizes[:nr])
        stop = start + sizes[nr]
    else:
        n, size = int(_saved(node, "sizes")[0]), int(_saved(node, "size"))
        start, stop = nr * size, min(n, (nr + 1) * size)
    base: Edge = node.next_functions[0]
    # A view below the slice keeps rows only if it keeps the batch dimension (e.g. [N, 1] -> [N]).
    while base[0] is not None and base[0].name() in _VIEWS:
        below = base[0].next_functions[0]
        if below[0] is None:
            return None
        shape = _output_shape(*below)
        rows = shape[0] if shape else 1
        if rows != n:
            return f"D's output is a reshape of {rows} rows into the {n} scored ones"
        base = below
    if base[0] is None:
        return None
    return base, n, (start, stop)


def _walk(top: Any, n: int, rows_r: tuple[int, int], rows_f: tuple[int, int],
          named_params: Sequence[tuple[str, torch.Tensor]]) -> SplitPlan | str:
    """Find the layers below ``top`` and check that every node between them and ``top`` is per-sample."""
    by_id = {id(p): name for name, p in named_params}
    layers: dict[int, _Layer] = {}
    parameter_side: dict[int, Any] = {}  # nodes computing layers' weight operands (kept: ids must stay unique)
    children: dict[int, list[Edge]] = {}  # the activation side of each node
    carries: dict[int, bool] = {}  # whether a layer lies at or below the node
    names: list[str] = []
    param_ids = set(by_id)
    loose: str | None = None
    order: dict[int, int] = {}
    shapes: dict[int, tuple[Any, ...]] = {}  # output shapes by node id (nodes stay alive in ``children``)
    mixing: list[tuple[tuple[bool, int], str]] = []
    # Iterative post-order walk of the activation side: a node is classified on the way down,
    # and on the way up learns whether a layer lies at or below it; then it must be per-sample.
    stack: list[tuple[Any, bool]] = [(top, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            below = [e for e in children[key] if carries[id(e[0])]]
            carries[key] = key in layers or bool(below)
            if key in layers:
                layers[key].terminal = not below
            elif below:
                name = node.name()
                why = _not_per_sample(node, name, _NODES.get(name), n, below, shapes)
                if why is not None:
                    owner = _owner(node, by_id)
                    # Named: a normalisation before the reshapes around it, then the node nearest the scores.
                    rank = (name not in _BATCH_NORMS, order[key])
                    mixing.append((rank, f"{owner} ({why})" if owner else why))
            continue
        if key in children:
            continue
        name = node.name()
        order[key] = len(names)
        names.append(name)
        kids: list[Edge] = []
        if name == _ACCUMULATE:
            if id(_variable(node)) in by_id and loose is None:  # said unless something mixes samples
                loose = f"parameter {by_id[id(_variable(node))]!r} is used outside a Linear, Conv or Embedding layer"
        else:
            kind = _NODES.get(name)
            layer = _as_layer(node, name, kind, param_ids, parameter_side) if kind and kind.role == "layer" else None
            if layer is not None:
                rows = _output_shape(node, 0, shapes)[0]
                if rows != n:
                    return f"a {name} whose batch ({rows} rows) is not the outputs' ({n})"
                layers[key] = layer
                kids = [node.next_functions[i] for i in kind.activation  # type: ignore[union-attr]
                        if i not in dict(layer.param_edges)]
                kids = [e for e in kids if e[0] is not None]
            else:
                kids = _next(node)
        children[key] = kids
        stack.append((node, True))
        stack.extend((e[0], False) for e in kids if id(e[0]) not in children)
    if mixing:
        return min(mixing)[1]
    if loose is not None:
        return loose
    if not layers:
        return "no Linear, Conv or Embedding layer found in D's graph"
    shared = [parameter_side[k] for k in parameter_side if k in children]
    if shared:
        return (f"a weight operand is computed from D's activations ({shared[0].name()} feeds both sides "
                f"of a product: samples meet, as in h @ h.T)")
    eps = max((torch.finfo(t.dtype).eps for layer in layers.values() for t in layer.saved.values()
               if isinstance(t, torch.Tensor) and t.is_floating_point()), default=0.0)
    structure = (n, rows_r, rows_f, tuple(names), tuple(id(p) for _, p in named_params))
    return SplitPlan(rows_r, rows_f, list(layers.values()), structure, max(eps, _tf32_eps(layers.values())))


def _tf32_eps(layers: Any) -> float:
    """TF32's rounding if float32 products on CUDA may use it (cuDNN convolutions do by default)."""
    for layer in layers:
        x = layer.saved.get("input")
        if isinstance(x, torch.Tensor) and x.is_cuda and x.dtype == torch.float32:
            conv = layer.kind == _CONV and torch.backends.cudnn.allow_tf32
            if conv or torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest":
                return 2.0 ** -10
    return 0.0


def _not_per_sample(node: Any, name: str, kind: _Kind | None, n: int, carrying: list[Edge],
                    known: dict[int, tuple[Any, ...]]) -> str | None:
    """Why ``node``, with samples in its inputs ``carrying``, may mix them; ``None`` if it acts per sample.

    ``known``: output shapes already read, by node id.
    """
    along = f"an operation along the batch dimension ({name})"
    if kind is None:
        return f"an operation not known to act on each sample alone ({name})"
    if kind.role == "elementwise" and len(node.next_functions) == 1:
        return None  # one operand, the output's shape: nothing to broadcast
    shapes = [_output_shape(*e, known) for e in carrying]
    if kind.role == "batch_norm":
        if shapes and shapes[0] and shapes[0][0] == 1 != n:
            return "instance normalisation (torch runs it as batch normalisation over the batch folded into channels)"
        if _saved(node, "training", kind=kind):
            return "batch normalisation in training mode"
    elif kind.role == "mixing":  # over the whole tensor, batch included
        return along
    elif kind.role == "layer":  # a Conv / product with no parameter operand: only its activation may carry samples
        operands = {id(node.next_functions[i][0]) for i in kind.activation if node.next_functions[i][0] is not None}
        if any(id(e[0]) not in operands for e in carrying) or len(carrying) > 1 and name == _MM:
            return along
    out = _output_shape(node, 0, known)
    if not out or out[0] != n or any(not s or s[0] != n for s in shapes):
        return along
    # Broadcasting may not pair one sample's row with another's: samples stay in dimension 0 of each operand.
    if (kind.role == "elementwise" or name in (_MUL, "RepeatBackward0")) and any(len(s) != len(out) for s in shapes):
        return along
    if name == "NativeLayerNormBackward0" and len(_saved(node, "normalized_shape", kind=kind)) >= len(shapes[0]):
        return along
    if kind.dims:
        dims = _dims(node, kind, len(out) if name == "UnsqueezeBackward0" else len(shapes[0]))
        moved = dims[:1] != [0] if name == "PermuteBackward0" else not dims or 0 in dims  # no dims: all of them
        if moved:
            return along
    return None


def _owner(node: Any, by_id: dict[int, str]) -> str | None:
    """The layer a node belongs to, named after a parameter it uses directly (e.g. a BatchNorm's weight)."""
    for e in _next(node):
        if e[0].name() == _ACCUMULATE and id(_variable(e[0])) in by_id:
            name = by_id[id(_variable(e[0]))]
            return "layer " + repr(name.rsplit(".", 1)[0]) if "." in name else f"parameter {name!r}"
    return None


def _as_layer(node: Any, name: str, kind: _Kind, params: set[int], parameter_side: dict[int, Any],
              ) -> _Layer | None:
    """The node as a layer to split: parameter operands computed from D's parameters alone, saved values read."""
    nf = node.next_functions
    operands = {_CONV: (1, 2), _ADDMM: (0, 2), _MM: (1,), _EMBEDDING: (0,)}.get(name)
    if name == _MUL:  # an activation times a parameter used directly (a gain such as attention's gamma)
        direct = [i for i, e in enumerate(nf) if e[0] is not None and e[0].name() == _ACCUMULATE
                  and id(_variable(e[0])) in params]
        if len(direct) != 1 or len(_next(node)) != 2:
            return None
        operands = (direct[0],)
    edges = [(i, nf[i]) for i in operands if nf[i][0] is not None]  # type: ignore[union-attr]
    if not edges:
        return None
    sides = [_parameter_only(e, params) for _, e in edges]
    if any(side is None for side in sides):
        return None
    saved = _layer_saved(node, name, kind, [i for i, _ in edges])
    if saved is None:
        return None
    for side in sides:
        parameter_side.update(side)  # type: ignore[arg-type]
    direct_t = [name in (_ADDMM, _MM) and e[0].name() == "TBackward0" and e[0].next_functions[0][0] is not None
                and e[0].next_functions[0][0].name() == _ACCUMULATE for i, e in edges]
    return _Layer(node, name, edges, saved, direct_t)


def _layer_saved(node: Any, name: str, kind: _Kind, operands: list[int]) -> dict[str, Any] | None:
    """The saved values the layer's weight gradients need (``None``: not a layer after all)."""
    def read(key: str, optional: bool = False) -> Any:
        return _saved(node, key, optional=optional, kind=kind)

    if name == _CONV:
        saved = {key: read(key) for key in ("stride", "padding", "dilation", "transposed",
                                                    "output_padding", "groups")}
        saved["bias_sizes"] = read("bias_sizes", optional=True)
        if 1 in operands:
            saved["input"], saved["weight"] = read("input"), read("weight")
        return saved
    if name in (_ADDMM, _MM):
        saved = {"alpha": read("alpha"), "beta": read("beta")} if name == _ADDMM else {}
        if operands != [0]:  # the weight, not only Addmm's bias
            saved["input"] = read("input")
        return saved
    if name == _EMBEDDING:
        if read("by_frequency"):
            return None
        return {"indices": read("indices"), "rows": int(read("rows")),
                "padding_idx": _signed(read("padding_idx"))}
    # A gain: broadcast over the batch, its gradient a sum over everything it multiplies.
    act, par = (read("other"), read("self")) if operands == [0] else \
        (read("self"), read("other"))
    if act.dim() == 0 or (par.dim() == act.dim() and par.shape[0] != 1):
        return None
    return {"activation": act, "shape": par.shape}


def _parameter_only(edge: Edge, params: set[int]) -> dict[int, Any] | None:
    """The nodes behind ``edge`` if they compute from D's parameters alone (SN, casts, transposes), else None."""
    # Nodes are kept (not only their ids): a Python node object freed mid-walk could hand its id to another.
    stack, seen = [edge[0]], {}
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        name = node.name()
        if len(seen) > _PARAMETER_SIDE_LIMIT or name in _NOT_ON_PARAMETER_SIDE:
            return None
        if name == _ACCUMULATE:
            if id(_variable(node)) not in params:
                return None
            continue
        stack.extend(e[0] for e in _next(node))
    return seen


# ------------------------------------------------------- the split backward
def split_gradients(split: SplitPlan, total: torch.Tensor, params: Sequence[torch.Tensor], *,
                    retain_graph: bool) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """Per-part gradients of every parameter from one backward of ``total`` (``L_r + L_f``, scaled).

    A parameter that no layer uses gets ``None`` in both lists.
    """
    groups = (split.rows_real, split.rows_fake)
    handles = []

    def hook_for(layer: _Layer):
        def prehook(grad_outputs):
            if grad_outputs[0] is not None:
                layer.parts = _weight_parts(layer, grad_outputs[0], groups)
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
                layer.parts = _weight_parts(layer, gy, groups)

    index = {id(p): k for k, p in enumerate(params)}
    part_r: list[torch.Tensor | None] = [None] * len(params)
    part_f: list[torch.Tensor | None] = [None] * len(params)

    def add(parts: list[torch.Tensor | None], k: int, g: torch.Tensor) -> None:
        parts[k] = g if parts[k] is None else parts[k] + g  # type: ignore[operator]

    through_edges: list[GradientEdge] = []
    through_r: list[torch.Tensor] = []
    through_f: list[torch.Tensor] = []
    for layer in split.layers:
        for (_, edge), direct, (g_r, g_f) in zip(layer.param_edges, layer.direct, layer.parts):
            node = edge[0].next_functions[0][0] if direct else edge[0]  # a plain Linear's W, not W^T
            if node.name() == _ACCUMULATE:
                k = index[id(_variable(node))]
                add(part_r, k, g_r)
                add(part_f, k, g_f)
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


def _weight_parts(layer: _Layer, gy: torch.Tensor, groups: Sequence[tuple[int, int]],
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each parameter operand of the layer, its gradient from each of the two row groups."""
    kind, saved = layer.kind, layer.saved
    gy = plain_tensor(gy)
    sizes = [b - a for a, b in groups]
    whole = groups[0][0] in (0, groups[1][1]) and sum(sizes) == gy.shape[0]

    def cut(t: torch.Tensor) -> list[torch.Tensor]:
        """The two groups' rows of ``t``: two views from one op where the groups tile the rows."""
        if whole:
            return list(t.split(sizes) if groups[0][0] == 0 else t.split(sizes[::-1])[::-1])
        return [t.narrow(0, a, b - a) for a, b in groups]

    halves = cut(gy)
    out: list[list[torch.Tensor]] = [[] for _ in layer.param_edges]
    if kind == _CONV:
        has_weight = any(i == 1 for i, _ in layer.param_edges)
        has_bias = any(i == 2 for i, _ in layer.param_edges)
        if has_weight:
            x, w = plain_tensor(saved["input"]), plain_tensor(saved["weight"])
            for g, x_part in zip(halves, cut(x)):
                _, g_w, g_b = torch.ops.aten.convolution_backward(
                    g, x_part, w, saved["bias_sizes"], saved["stride"], saved["padding"], saved["dilation"],
                    saved["transposed"], saved["output_padding"], saved["groups"], [False, True, has_bias])
                for k, (i, _) in enumerate(layer.param_edges):
                    out[k].append(g_w if i == 1 else g_b)
        else:  # a frozen weight: the bias's gradient is a sum over everything but the channels
            for g in halves:
                out[0].append(g.sum([d for d in range(g.dim()) if d != 1]))
    elif kind in (_ADDMM, _MM):
        alpha, beta = saved.get("alpha", 1), saved.get("beta", 1)
        inputs = cut(plain_tensor(saved["input"])) if "input" in saved else halves  # none: a bias alone
        for g, x_part in zip(halves, inputs):
            for k, (i, _) in enumerate(layer.param_edges):
                if kind == _ADDMM and i == 0:
                    part = g.sum(0)
                    out[k].append(part if beta == 1 else part * beta)
                else:
                    # A plain Linear's W directly (gy^T x), no transpose to undo;
                    # (gy^T x)^T through a parametrization: W^T's gradient laid out as W, as a plain backward does.
                    part = g.t().mm(x_part) if layer.direct[k] else g.t().mm(x_part).t()
                    out[k].append(part if alpha == 1 else part * alpha)
    elif kind == _MUL:
        act = plain_tensor(saved["activation"])
        for g, a in zip(halves, cut(act)):
            out[0].append((g * a).sum_to_size(saved["shape"]))
    else:
        for g, idx in zip(halves, cut(plain_tensor(saved["indices"]))):  # what a plain backward calls
            out[0].append(torch.ops.aten.embedding_dense_backward(g, idx, saved["rows"], saved["padding_idx"], False))
    layer.saved = {}  # the saved input is freed with the node, as in a plain backward
    return [(a, b) for a, b in out]


# ------------------------------- autograd internals: the one table, read only here
@dataclass(frozen=True)
class _Kind:
    """What the split knows of one kind of backward node.

    ``role``: ``"layer"`` (a Linear / Conv / Embedding / gain whose parameter operands it splits; when it
    has none, it acts per sample with its ``activation`` operands alone carrying samples),
    ``"elementwise"``, ``"per_sample"`` (the batch dimension stays first and is not among ``dims``),
    ``"batch_norm"``, ``"slice"`` (how D's outputs are cut into the parts), ``"mixing"`` (over the
    whole tensor, batch included). ``saved``: our name of a saved value -> the node's attribute.
    """

    role: str
    saved: Mapping[str, str] = field(default_factory=dict)
    dims: tuple[str, ...] = ()  #: keys of ``saved``: the dimensions the operation acts along
    activation: tuple[int, ...] = ()  #: for layers and products: the operands that may carry samples


def _k(role: str, along: tuple[str, ...] = (), activation: tuple[int, ...] = (), **saved: str) -> _Kind:
    return _Kind(role, saved, along, activation)


_ACCUMULATE = "torch::autograd::AccumulateGrad"
_CONV, _ADDMM, _MM, _EMBEDDING, _MUL = ("ConvolutionBackward0", "AddmmBackward0", "MmBackward0",
                                        "EmbeddingBackward0", "MulBackward0")
_ELEMENTWISE = ("AbsBackward0", "AddBackward0", "AddBackward1", "CloneBackward0", "ClampBackward1",
                "ClampMinBackward0", "ClampMaxBackward0", "DivBackward0", "DivBackward1", "EluBackward0",
                "ExpBackward0", "GeluBackward0", "HardtanhBackward0", "LeakyReluBackward0", "LogBackward0",
                "LogSigmoidBackward0", "MaximumBackward0", "MinimumBackward0", "MulBackward1", "NegBackward0",
                "PowBackward0", "ReluBackward0", "RsqrtBackward0", "RsubBackward1", "SigmoidBackward0",
                "SiluBackward0", "SoftplusBackward0", "SqrtBackward0", "SubBackward0", "TanhBackward0",
                "ThresholdBackward0", "ToCopyBackward0", "WhereBackward0", "NativeDropoutBackward0",
                "HardswishBackward0", "MishBackward0", "LeakyReluBackward1", "EluBackward1", "CeluBackward0",
                "CeluBackward1", "HardsigmoidBackward0", "SinBackward0", "CosBackward0", "MaskedFillBackward0",
                "Log1pBackward0", "Expm1Backward0", "ReciprocalBackward0", "ErfBackward0", "SoftshrinkBackward0",
                "HardshrinkBackward0", "AddcmulBackward0", "AddcdivBackward0", "LerpBackward0", "LerpBackward1",
                "ClampBackward0", "SubBackward1", "ThresholdBackward1")
_VIEWS = ("ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "AliasBackward0",
          "SqueezeBackward0", "SqueezeBackward1", "SqueezeBackward2", "UnsqueezeBackward0", "ExpandBackward0")
_POOLS = ("AvgPool2DBackward0", "AvgPool1DBackward0", "AvgPool3DBackward0", "MaxPool2DWithIndicesBackward0",
          "MaxPool3DWithIndicesBackward0", "AdaptiveAvgPool2DBackward0", "AdaptiveMaxPool2DBackward0",
          "UpsampleNearest2DBackward0", "UpsampleBilinear2DBackward0", "PixelShuffleBackward0",
          "PixelUnshuffleBackward0", "ConstantPadNdBackward0", "ReflectionPad2DBackward0",
          "ReplicationPad2DBackward0", "BmmBackward0", "BaddbmmBackward0", "NativeGroupNormBackward0",
          "Im2ColBackward0", "Col2ImBackward0", "RepeatBackward0")
#: Reductions, softmaxes, concatenations, picks along ``dim`` (per sample unless it holds the batch's).
_DIM_REDUCTIONS = ("SumBackward1", "MeanBackward1", "AmaxBackward0", "AminBackward0", "MaxBackward0",
                   "MinBackward0", "NormBackward1", "LinalgVectorNormBackward0", "StdBackward0", "VarBackward0",
                   "StdMeanBackward0", "VarMeanBackward0", "LogsumexpBackward0", "ProdBackward1",
                   "SoftmaxBackward0", "LogSoftmaxBackward0", "CatBackward0", "StackBackward0", "SelectBackward0",
                   "IndexSelectBackward0", "GatherBackward0", "GluBackward0", "UnbindBackward0", "CumsumBackward0")
#: Over the whole tensor, batch included.
_WHOLE_REDUCTIONS = ("SumBackward0", "MeanBackward0", "MaxBackward1", "MinBackward1", "NormBackward0",
                     "ProdBackward0")
_BATCH_NORMS = ("NativeBatchNormBackward0", "CudnnBatchNormBackward0", "MiopenBatchNormBackward0",
                "NativeBatchNormLegitBackward0", "BatchNormWithUpdateBackward0")
#: Every node kind the split reads; a kind not here, on a path from a layer to the scores, refuses it.
_NODES: dict[str, _Kind] = {
    _CONV: _k("layer", activation=(0,), input="_saved_input", weight="_saved_weight",
              bias_sizes="_saved_bias_sym_sizes_opt", stride="_saved_stride", padding="_saved_padding",
              dilation="_saved_dilation", transposed="_saved_transposed",
              output_padding="_saved_output_padding", groups="_saved_groups"),
    _ADDMM: _k("layer", activation=(1,), input="_saved_mat1", alpha="_saved_alpha", beta="_saved_beta"),
    _MM: _k("layer", activation=(0,), input="_saved_self"),
    _EMBEDDING: _k("layer", indices="_saved_indices", rows="_saved_weight_sym_argsize_0",
                   padding_idx="_saved_padding_idx", by_frequency="_saved_scale_grad_by_freq"),
    _MUL: _k("layer", activation=(0, 1), self="_saved_self", other="_saved_other"),
    **{name: _k("elementwise") for name in _ELEMENTWISE},
    **{name: _k("per_sample") for name in _VIEWS + _POOLS},
    **{name: _k("per_sample", ("dim",), dim="_saved_dim") for name in _DIM_REDUCTIONS},
    "TransposeBackward0": _k("per_sample", ("dim0", "dim1"), dim0="_saved_dim0", dim1="_saved_dim1"),
    "PermuteBackward0": _k("per_sample", ("dims",), dims="_saved_dims"),
    "SliceBackward0": _k("slice", ("dim",), dim="_saved_dim", start="_saved_start", end="_saved_end",
                         step="_saved_step", sizes="_saved_self_sym_sizes"),
    "SplitBackward0": _k("slice", ("dim",), dim="_saved_dim", size="_saved_split_size",
                         sizes="_saved_self_sym_sizes"),
    "SplitWithSizesBackward0": _k("slice", ("dim",), dim="_saved_dim", split_sizes="_saved_split_sizes"),
    **{name: _k("batch_norm", training="_saved_training") for name in _BATCH_NORMS},
    "NativeLayerNormBackward0": _k("per_sample", normalized_shape="_saved_normalized_shape"),
    "RollBackward0": _k("per_sample", ("dims",), dims="_saved_dims"),
    "FlipBackward0": _k("per_sample", ("dims",), dims="_saved_dims"),
    **{name: _k("mixing") for name in _WHOLE_REDUCTIONS + ("IndexBackward0", "TBackward0")},
}
#: Where a node says the shapes of its forward outputs, and an AccumulateGrad its parameter.
_OUTPUT_METADATA, _VARIABLE = "_input_metadata", "variable"
#: What may stand between a layer and its parameter (spectral norm, parametrizations, casts, transposes):
#: at most this many nodes, none of them a product with an activation.
_PARAMETER_SIDE_LIMIT = 64
#: What may lie between D's outputs and the parts: views, slices and picks of rows.
_PICKS = frozenset(_VIEWS + ("TBackward0", "TransposeBackward0", "PermuteBackward0", "SelectBackward0",
                             "SliceBackward0", "SplitBackward0", "SplitWithSizesBackward0", "IndexSelectBackward0",
                             "IndexBackward0", "GatherBackward0", "RollBackward0", "FlipBackward0"))
_NOT_ON_PARAMETER_SIDE = frozenset({_CONV, _ADDMM, _EMBEDDING, "BmmBackward0", "BaddbmmBackward0"})


class _Unexpected(Exception):
    """The graph is not as this table describes it (a torch release renamed something)."""


def _kind(node: Any) -> _Kind | None:
    return _NODES.get(node.name())


def _saved(node: Any, key: str, *, optional: bool = False, kind: _Kind | None = None) -> Any:
    """The node's saved value ``key`` (named in :data:`_NODES`); :class:`_Unexpected` if it is not there."""
    kind = kind or _kind(node)
    if kind is None or key not in kind.saved:
        raise _Unexpected(f"{node.name()} has no entry {key!r}")
    value = getattr(node, kind.saved[key], _Unexpected)
    if value is _Unexpected or (value is None and not optional):
        raise _Unexpected(f"{node.name()}.{kind.saved[key]} is missing")
    return value


def _output_shape(node: Any, nr: int = 0, known: dict[int, tuple[Any, ...]] | None = None) -> tuple[int, ...]:
    """The shape of the node's forward output ``nr``; ``known`` keeps each node's shapes, read once."""
    shapes = None if known is None else known.get(id(node))
    if shapes is None:
        try:
            shapes = tuple(tuple(m.shape) for m in getattr(node, _OUTPUT_METADATA))
        except (AttributeError, TypeError) as e:
            raise _Unexpected(f"{node.name()}.{_OUTPUT_METADATA}: {e}") from None
        if known is not None:
            known[id(node)] = shapes
    if nr >= len(shapes):
        raise _Unexpected(f"{node.name()}.{_OUTPUT_METADATA} has no output {nr}")
    return shapes[nr]


def _variable(node: Any) -> torch.Tensor:
    value = getattr(node, _VARIABLE, None)
    if not isinstance(value, torch.Tensor):
        raise _Unexpected(f"AccumulateGrad.{_VARIABLE} is missing")
    return value


def _dims(node: Any, kind: _Kind, ndim: int) -> list[int]:
    """The dimensions the node acts along, non-negative."""
    out = []
    for key in kind.dims:
        value = _saved(node, key, optional=True, kind=kind)
        values = [] if value is None else [value] if isinstance(value, int) else list(value)
        out += [_signed(d) % max(ndim, 1) for d in values]
    return out


def _signed(value: Any) -> int:
    """A saved integer as Python sees it: negative ones come back as unsigned 64-bit integers."""
    value = int(value)
    return value - (1 << 64) if value >= 1 << 63 else value


Edge = tuple[Any, int]


def _next(node: Any) -> list[Edge]:
    return [e for e in node.next_functions if e[0] is not None]
