"""The row-wise optimisers against ``torch.optim`` on the rows: equal to the bit."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.optim import RowAdam, RowSGD


def _rows(data: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    rows = [row.clone().requires_grad_() for row in data]
    for row, g in zip(rows, grad, strict=True):
        row.grad = g.clone()
    return rows


@settings(max_examples=25, deadline=None)
@given(
    reps=st.integers(1, 5),
    width=st.integers(1, 40),
    steps=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_row_adam_equals_torch_adam_per_row(reps, width, steps, seed, dtype):
    """Each row of :class:`RowAdam` follows ``torch.optim.Adam(fused=True)`` on that row
    exactly (tolerance 0: the same kernel), also when rows are reset in between: a reset row
    matches a fresh torch state (``state.pop``)."""
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(reps, width, generator=gen, dtype=dtype)
    grad = torch.zeros_like(data)
    opt = RowAdam(data, grad, 3e-3, betas=(0.85, 0.995))
    rows = _rows(data, grad)
    ref = torch.optim.Adam(rows, lr=3e-3, betas=(0.85, 0.995), fused=True)
    for t in range(steps):
        g = torch.randn(reps, width, generator=gen, dtype=dtype)
        grad.copy_(g)
        for row, gr in zip(rows, g, strict=True):
            row.grad.copy_(gr)
        if t % 4 == 3:  # reset every other row
            picked = list(range(0, reps, 2))
            opt.reset(picked)
            for r in picked:
                ref.state.pop(rows[r], None)
        opt.step()
        ref.step()
        assert torch.equal(data, torch.stack([row.detach() for row in rows]))


def test_row_adam_state_round_trip():
    """A state restored from :meth:`RowAdam.state_dict` continues exactly as the original."""
    gen = torch.Generator().manual_seed(3)
    data, grad = torch.randn(3, 7, generator=gen), torch.zeros(3, 7)
    opt = RowAdam(data, grad, 1e-2)
    for _ in range(3):
        grad.copy_(torch.randn(3, 7, generator=gen))
        opt.step()
    copy_data, copy_grad = data.clone(), grad.clone()
    copy = RowAdam(copy_data, copy_grad, 1e-2)
    copy.load_state_dict(opt.state_dict())
    g = torch.randn(3, 7, generator=gen)
    grad.copy_(g)
    copy_grad.copy_(g)
    opt.step()
    copy.step()
    assert torch.equal(data, copy_data)


def test_row_sgd_equals_torch_sgd():
    """:class:`RowSGD` is ``torch.optim.SGD`` on the rows, to the bit."""
    gen = torch.Generator().manual_seed(5)
    data, grad = torch.randn(4, 9, generator=gen), torch.randn(4, 9, generator=gen)
    rows = _rows(data, grad)
    RowSGD(data, grad, 0.1).step()
    torch.optim.SGD(rows, lr=0.1).step()
    assert torch.equal(data, torch.stack([row.detach() for row in rows]))
