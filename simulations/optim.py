"""The optimiser of :func:`simulations.train.fit`: one independent Adam (or SGD) per replicate.

The parameters of ``R`` replicates live in one ``[R, P]`` buffer (``train._FlatParameters``)
and replicate ``r`` is row ``r``. Each row keeps its own optimiser state, so that one
replicate can start a phase afresh (:meth:`RowOptimizer.reset`) while the others go on.

Adam (Kingma & Ba 2015), per row ``r`` with its own step count ``t_r``:

    m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
    theta <- theta - lr (m / (1 - beta1^t_r)) / (sqrt(v / (1 - beta2^t_r)) + eps),

computed by ``torch.optim.adam.adam`` (its fused kernel), the same arithmetic as
``torch.optim.Adam(rows, fused=True)``; SGD is ``theta <- theta - lr g``. The state is
``m`` and ``v`` as ``[R, P]`` tensors and a step count per row, which a checkpoint saves
as they are. Calling the functional update directly skips ``Optimizer.step``'s
bookkeeping (hooks, grouping, state lookup per row), which cost about 0.3 ms of the
demo workload's 5 ms step (``docs/engine.md``, "Performance").
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam

__all__ = ["RowAdam", "RowOptimizer", "RowSGD"]


class RowOptimizer:
    """Updates ``data`` (``[R, P]``) from ``grad`` (same shape), row by row.

    Parameters
    ----------
    data, grad
        The parameter buffer and its gradient buffer (updated in place).
    lr
        Learning rate.
    """

    def __init__(self, data: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
        self.data, self.grad, self.lr = data, grad, float(lr)

    def step(self) -> None:
        """One update of every row."""
        raise NotImplementedError

    def reset(self, rows: list[int]) -> None:
        """Rows ``rows`` start from a fresh state (their next update is a first one)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` of an optimiser of the same shape."""


class RowSGD(RowOptimizer):
    """``theta <- theta - lr g`` (no state)."""

    def step(self) -> None:
        self.data.add_(self.grad, alpha=-self.lr)


class RowAdam(RowOptimizer):
    """Adam with a state and a step count per row (see the module docstring)."""

    def __init__(
        self,
        data: torch.Tensor,
        grad: torch.Tensor,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(data, grad, lr)
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self.exp_avg = torch.zeros_like(data)
        self.exp_avg_sq = torch.zeros_like(data)
        # One scalar step count per row, on the rows' device (the fused kernel's layout).
        self.steps = [torch.zeros((), dtype=torch.float32, device=data.device) for _ in data]
        self._lists = (
            list(data.unbind(0)), list(grad.unbind(0)),
            list(self.exp_avg.unbind(0)), list(self.exp_avg_sq.unbind(0)),
        )  # fmt: skip

    def step(self) -> None:
        params, grads, exp_avgs, exp_avg_sqs = self._lists
        beta1, beta2 = self.betas
        adam(
            params, grads, exp_avgs, exp_avg_sqs, [], self.steps,
            fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=self.lr,
            weight_decay=0.0, eps=self.eps, maximize=False,
        )  # fmt: skip

    def reset(self, rows: list[int]) -> None:
        for r in rows:
            self.exp_avg[r] = 0.0
            self.exp_avg_sq[r] = 0.0
            self.steps[r].zero_()

    def state_dict(self) -> dict:
        return {
            "exp_avg": self.exp_avg.clone(),
            "exp_avg_sq": self.exp_avg_sq.clone(),
            "step": torch.stack(self.steps).clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        for count, value in zip(self.steps, state["step"].unbind(0), strict=True):
            count.copy_(value)
