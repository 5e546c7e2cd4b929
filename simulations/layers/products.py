"""The matrix products of a layer's training pass, batched over replicates.

For replicate ``r``, with inputs ``X_r [B, in]``, weights ``W_r [out, in]``, bias ``b_r`` and
the gradient ``G_r = dL/dH_r [B, out]`` of the layer's output ``H_r``:

    H_r = X_r W_r^T + b_r,      dL/dW_r = G_r^T X_r,      dL/dX_r = G_r W_r.

Tensors are handed in and out as ``[R, B, ...]``, whatever their storage; the products
are computed feature-major (``W X^T``, ``[R, out, B]``, handed out as an ``[R, B, out]``
view; ``W^T G^T`` likewise), which is faster than ``X W^T`` for skinny layers and gives the
next product contiguous operands. Two implementations, chosen by the rule below:

* batched GEMM (``torch.baddbmm`` / ``torch.bmm``): one call for all replicates;
* oneDNN's float32 linear (``torch.ops.mkldnn._linear_pointwise``, the operator through
  which ``torch.compile``'s CPU backend runs linear layers), one call per replicate. On the
  project's CPU (AMD EPYC, 2 threads) it ran large products 1.2 to 2.4 times as fast as
  the batched GEMM (``docs/engine.md``, "Performance", has the figures).

The rule: the forward product and the weight gradient run through oneDNN
(:func:`use_onednn`) for float32 tensors on an x86-64 CPU when the layer has at least
``ONEDNN_MIN_MACS`` multiply-adds per replicate (below that one call per replicate costs as
much as one batched call or more: the first layer of the recovery benchmark's tanh teacher,
200 -> 12 at ``B = 512`` for 40 models, 1.2 million per replicate, ran its forward product
at 0.4 to 0.6 times the batched GEMM's speed, a 16 -> 16 layer of 20 models at 0.1). The
input gradient, whose output ``[R, in, B]`` is the largest of the three and is copied once
more out of the per-replicate calls, follows
only when its contraction and batch are long enough (:func:`input_grad_onednn`): W1's
first layer as a hidden layer (2000 -> 6, R = 64) took 27 to 73 ms through oneDNN against
14 to 15 with the batched GEMM. The rule depends on a replicate's own shapes only, and
each replicate's product is a call of its own, so a replicate's values do not depend on
the replicates beside it (the batched-equals-separate guarantee holds bit for bit for
these products).
oneDNN reads a matrix only in a plain layout (rows or columns contiguous; a weight view
with strided rows took 4 s instead of 9 ms), so such operands are copied first.

Inside a graph compiled by ``torch.compile`` the three oneDNN products are custom operators
(``ssbnn::onednn_affine``, ``ssbnn::onednn_weight_grad``, ``ssbnn::onednn_input_grad``:
inductor calls them as they are, where it cannot lower oneDNN's own operator); the eager
step calls the same functions directly (a custom operator's dispatch costs a few
microseconds a call).
"""

from __future__ import annotations

import platform

import torch

__all__ = [
    "HAS_ONEDNN", "INPUT_GRAD_MIN_BATCH", "INPUT_GRAD_MIN_OUT", "ONEDNN_MIN_MACS", "X86_64",
    "affine", "input_grad", "input_grad_onednn", "onednn_linear", "use_onednn", "weight_grad",
]  # fmt: skip

ONEDNN_MIN_MACS = 1 << 22
"""Multiply-adds per replicate (``B * in * out``) from which a product runs through oneDNN."""
INPUT_GRAD_MIN_OUT = 64
"""The shortest contraction (``out``) of an input gradient through oneDNN."""
INPUT_GRAD_MIN_BATCH = 128
"""The smallest batch of an input gradient through oneDNN."""


X86_64 = platform.machine().lower() in ("x86_64", "amd64")
"""Whether this is an x86-64 machine (where the oneDNN products and the compiled step were
measured)."""


def _onednn_linear():
    """oneDNN's linear operator, or ``None`` where this build of torch lacks it or the CPU is
    not x86-64 (the rule was measured there only; elsewhere the batched GEMM is kept)."""
    if not X86_64:
        return None
    try:
        if not torch.backends.mkldnn.is_available():
            return None
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


_LINEAR = _onednn_linear()
HAS_ONEDNN = _LINEAR is not None
"""Whether this build of torch has oneDNN's linear operator, on an x86-64 CPU."""


def use_onednn(batch: int, fan_in: int, fan_out: int, like: torch.Tensor) -> bool:
    """Whether the products of a ``fan_in -> fan_out`` layer on ``batch`` rows of ``like``'s
    dtype and device run through oneDNN (see the module docstring)."""
    return (
        HAS_ONEDNN
        and torch.backends.mkldnn.enabled
        and like.dtype == torch.float32
        and like.device.type == "cpu"
        and batch * fan_in * fan_out >= ONEDNN_MIN_MACS
    )


def _plain(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` with contiguous rows or columns (a copy only when it has neither)."""
    if matrix.is_contiguous() or matrix.t().is_contiguous():
        return matrix
    return matrix.contiguous()


def onednn_linear(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None):
    """``a b^T (+ bias)`` of two matrices through oneDNN (float32, CPU; needs
    :data:`HAS_ONEDNN`)."""
    return _LINEAR(_plain(a), _plain(b), bias, "none", [], "")


def _stack(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(parts)


def _affine_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``W X^T + b`` per replicate through oneDNN: ``[R, out, B]``."""
    weight = weight.contiguous()
    pre = _stack([onednn_linear(weight[r], x[r]) for r in range(len(x))])
    return pre.add_(bias.unsqueeze(-1))


def _weight_grad_onednn(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``G^T X`` per replicate through oneDNN: ``[R, out, in]``."""
    return _stack([onednn_linear(grad[r].t(), x[r].t()) for r in range(len(x))])


def _input_grad_onednn(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``W^T G^T`` per replicate through oneDNN: ``[R, in, B]``."""
    weight = weight.contiguous()
    return _stack([onednn_linear(weight[r].t(), grad[r]) for r in range(len(grad))])


def _register(name: str, function, shape):
    """``function`` as the custom operator ``ssbnn::name`` (for compiled graphs), whose
    result, for the compiler's shape propagation, is a new contiguous tensor of
    ``shape(*args)``."""
    op = torch.library.custom_op(f"ssbnn::{name}", function, mutates_args=())
    op.register_fake(lambda a, b, *rest: a.new_empty(shape(a, b)))
    return op


_AFFINE_OP = _register(
    "onednn_affine", _affine_onednn, lambda x, w: (len(x), w.shape[1], x.shape[1])
)
_WEIGHT_GRAD_OP = _register(
    "onednn_weight_grad", _weight_grad_onednn, lambda g, x: (len(x), g.shape[2], x.shape[2])
)
_INPUT_GRAD_OP = _register(
    "onednn_input_grad", _input_grad_onednn, lambda g, w: (len(g), w.shape[2], g.shape[1])
)


def affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, onednn: bool):
    """``x W^T + b``: ``x [R, B, in]``, ``weight [R, out, in]``, ``bias [R, out]`` ->
    ``[R, B, out]`` (a view of the feature-major ``[R, out, B]``)."""
    if onednn:
        op = _AFFINE_OP if torch.compiler.is_compiling() else _affine_onednn
        return op(x, weight, bias).transpose(-1, -2)
    return torch.baddbmm(bias.unsqueeze(-1), weight, x.transpose(-1, -2)).transpose(-1, -2)


def weight_grad(grad: torch.Tensor, x: torch.Tensor, out: torch.Tensor | None, onednn: bool):
    """``G^T X``: ``grad [R, B, out]``, ``x [R, B, in]`` -> ``[R, out, in]``, written into
    ``out`` or, with ``out=None`` (in a compiled graph, which does not write into views),
    returned as a new tensor."""
    if out is None:
        if onednn:
            op = _WEIGHT_GRAD_OP if torch.compiler.is_compiling() else _weight_grad_onednn
            return op(grad, x)
        return grad.transpose(-1, -2) @ x
    if onednn:
        for r in range(len(x)):
            out[r].copy_(onednn_linear(grad[r].t(), x[r].t()))
    else:
        torch.bmm(grad.transpose(-1, -2), x, out=out)
    return out


def input_grad_onednn(batch: int, fan_out: int) -> bool:
    """Whether a layer whose products run through oneDNN computes its input gradient there
    too: only when its contraction (over ``out``) and its batch are long enough (see the
    module docstring)."""
    return fan_out >= INPUT_GRAD_MIN_OUT and batch >= INPUT_GRAD_MIN_BATCH


def input_grad(grad: torch.Tensor, weight: torch.Tensor, onednn: bool) -> torch.Tensor:
    """``G W``: ``grad [R, B, out]``, ``weight [R, out, in]`` -> ``[R, B, in]`` (a view of the
    feature-major ``[R, in, B]``); through oneDNN when ``onednn`` and
    :func:`input_grad_onednn`."""
    if onednn and input_grad_onednn(grad.shape[-2], weight.shape[-2]):
        op = _INPUT_GRAD_OP if torch.compiler.is_compiling() else _input_grad_onednn
        return op(grad, weight).transpose(-1, -2)
    return torch.bmm(weight.transpose(-1, -2), grad.transpose(-1, -2)).transpose(-1, -2)
