"""The contraction rate as a sympy expression (docs/theory.md, section 4.4).

The expression is the *closed-form* variant of :func:`~ssbnn_theory.contraction_rate`
(``closed_form=True``): the closed-form ``delta_n = eta delta_0 / D(delta_0)`` with
``delta_0 = eta / Lambda`` and the closed-form ``t`` of Lemma L2, so that numeric and
symbolic evaluations agree to rounding. Symbols: ``n``, and per layer ``k_l``, ``s_l``
(hidden layers) and ``B_l`` (``l = 1..L+1``); ``p``, the output width and the prior's
hyperparameters enter as numbers.

sympy is imported inside the functions: ``import ssbnn_theory`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ssbnn_theory.architecture import Architecture
from ssbnn_theory.enums import Activation, FanIn, Prior
from ssbnn_theory.priors import PriorSpec, as_prior_spec
from ssbnn_theory.rates import DEFAULT_KAPPA_LOG
from ssbnn_theory.validation import check_real, check_real_array

if TYPE_CHECKING:  # pragma: no cover
    import sympy

__all__ = ["SymbolicRate", "symbolic_rate"]


@dataclass(frozen=True)
class SymbolicRate:
    """``eps_n^2`` and its parts as sympy expressions, with the architecture's values.

    Attributes
    ----------
    n
        The sample-size symbol.
    symbols
        ``{"k_1": k_1, ..., "s_1": ..., "B_1": ..., "B_{L+1}": ...}``.
    values
        Substitution ``{symbol: value}`` for the architecture it was built from.
    eps2, r_n, n_r_n, delta, log_lambda, selection, slab
        Expressions (``selection``: hidden layers, ``slab``: all layers).
    leading_coefficient
        ``A`` in ``n r_n = A log n + O(1)``:
        ``A = (1/2) [sum_{l<=L+1} s_l r_l + C_lambda sum_{l<=L} s_l d_l]``.
    """

    architecture: Architecture
    prior: PriorSpec
    kappa_log: float
    n: Any
    symbols: dict[str, Any]
    values: dict[Any, Any]
    n_r_n: Any
    delta: Any
    log_lambda: Any
    selection: tuple[Any, ...]
    slab: tuple[Any, ...]
    leading_coefficient: Any
    _numeric: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def r_n(self) -> sympy.Expr:
        """``r_n = (n r_n) / n``."""
        return self.n_r_n / self.n

    @property
    def eps2(self) -> sympy.Expr:
        """``eps_n^2 = r_n (log n)^{2 kappa_log}``."""
        import sympy

        return self.r_n * sympy.log(self.n) ** (2 * self._kappa())

    def leading_order(self) -> sympy.Expr:
        """``A (log n)^{1 + 2 kappa_log} / n``: ``eps_n^2`` over it tends to 1 (section 4.4)."""
        import sympy

        return self.leading_coefficient * sympy.log(self.n) ** (1 + 2 * self._kappa()) / self.n

    def n_exponent(self) -> sympy.Expr:
        """``lim_{n -> oo} d log eps_n^2 / d log n`` of the leading order (``-1``)."""
        import sympy

        lead = self.leading_order()
        slope = sympy.simplify(self.n * sympy.diff(sympy.log(lead), self.n))
        return sympy.limit(slope, self.n, sympy.oo)

    def local_slope(self) -> sympy.Expr:
        """``d log eps_n^2 / d log n = n d/dn log eps_n^2`` as an expression."""
        import sympy

        return self.n * sympy.diff(sympy.log(self.eps2), self.n)

    def _kappa(self) -> Any:
        import sympy

        return sympy.nsimplify(self.kappa_log)

    def evaluate(
        self,
        n: np.ndarray | float | None = None,
        what: str = "eps2",
        digits: int = 30,
        *,
        log_n: np.ndarray | float | None = None,
        at: dict[str, float] | None = None,
    ) -> np.ndarray:
        """Evaluate an expression at the architecture's values and the given ``n`` (mpmath).

        Parameters
        ----------
        n, log_n
            Sample sizes, or their logarithms (for ``n`` beyond float range); one of the two.
        what
            ``"eps2"``, ``"r_n"``, ``"n_r_n"``, ``"delta"``, ``"local_slope"``,
            ``"leading_order"`` or ``"ratio_to_leading"`` (``eps_n^2`` over the leading order).
        digits
            Significant digits of the mpmath evaluation.
        at
            Values overriding the architecture's, by symbol name (``{"s_1": 2, "B_3": 0.5}``).
        """
        import mpmath
        import sympy

        from ssbnn_theory.errors import InvalidParameterError

        if (n is None) == (log_n is None):
            raise InvalidParameterError("n", "given, or log_n given (exactly one)", n)
        exprs = {
            "eps2": lambda: self.eps2,
            "r_n": lambda: self.r_n,
            "n_r_n": lambda: self.n_r_n,
            "delta": lambda: self.delta,
            "local_slope": self.local_slope,
            "leading_order": self.leading_order,
            "ratio_to_leading": lambda: self.eps2 / self.leading_order(),
        }
        if what not in exprs:
            raise InvalidParameterError("what", "one of " + ", ".join(exprs), what)
        values = {str(k): v for k, v in self.values.items()}
        for name, value in (at or {}).items():
            if name not in values:
                raise InvalidParameterError("at", "symbol names " + ", ".join(values), name)
            values[name] = value
        func = self._numeric.get(what)
        params = list(self.values)
        if func is None:
            func = sympy.lambdify([self.n, *params], exprs[what](), modules="mpmath", cse=True)
            self._numeric[what] = func
        with mpmath.workdps(digits):
            args = [mpmath.mpf(str(values[str(x)])) for x in params]
            if log_n is not None:
                logs = np.atleast_1d(check_real_array("log_n", log_n, lower=0.0, lower_open=True))
                points = [mpmath.exp(mpmath.mpf(float(v))) for v in logs.ravel()]
            else:
                ns = np.atleast_1d(check_real_array("n", n, lower=1.0, lower_open=True))
                points = [mpmath.mpf(float(v)) for v in ns.ravel()]
            return np.array([float(func(x, *args)) for x in points])


def symbolic_rate(
    arch: Architecture,
    prior: Prior | str | PriorSpec,
    sigma_e: float = 1.0,
    *,
    kappa_log: float = DEFAULT_KAPPA_LOG,
    C_lambda: float = 1.0,
) -> SymbolicRate:
    """Build the closed-form rate of ``arch`` under ``prior`` as sympy expressions.

    Matches ``contraction_rate(arch, prior, n, sigma_e, kappa_log=..., C_lambda=...,
    closed_form=True, inclusion="theory")`` term by term (docs/theory.md, section 4.4).
    """
    import sympy

    spec = as_prior_spec(prior)
    sigma_e = check_real("sigma_e", sigma_e, lower=0.0, lower_open=True)
    kappa_log = check_real("kappa_log", kappa_log, lower=0.0)
    C_lambda = check_real("C_lambda", C_lambda, lower=0.0)
    depth = arch.depth
    n = sympy.Symbol("n", positive=True)
    k = [sympy.Symbol(f"k_{i}", positive=True) for i in range(1, depth + 1)]
    s = [sympy.Symbol(f"s_{i}", positive=True) for i in range(1, depth + 1)]
    b = [sympy.Symbol(f"B_{i}", nonnegative=True) for i in range(1, depth + 2)]
    symbols = {str(x): x for x in (*k, *s, *b)}
    values: dict[Any, Any] = {}
    for sym, val in zip(k, arch.hidden, strict=True):
        values[sym] = sympy.Integer(val)
    for sym, val in zip(s, arch.active, strict=True):
        values[sym] = sympy.Integer(val)
    for sym, val in zip(b, arch.bounds, strict=True):
        values[sym] = sympy.Float(val, 30)

    num = lambda x: sympy.Float(x, 30)  # noqa: E731 - hyperparameters as 30-digit floats
    p = sympy.Integer(arch.p)
    outputs = sympy.Integer(arch.outputs)
    widths = [p, *k]  # k_0 .. k_L
    counts = [*s, outputs]  # s_1 .. s_{L+1}
    m = [p, *s] if arch.fan_in is FanIn.ACTIVE else [p, *k]
    d = [widths[i] + 1 for i in range(depth + 1)]
    r = [mi + 1 for mi in m]
    act = arch.activation
    ell = num(act.lipschitz)
    offset = num(act.offset)
    cap = act in (Activation.TANH, Activation.SIGMOID)

    h = sympy.Integer(1)
    lam = sympy.Integer(0)
    delta_sym = sympy.Symbol("delta", positive=True)
    dpoly = sympy.Integer(0)
    for i in range(depth + 1):
        e = ell if i < depth else sympy.Integer(1)
        a_i = m[i] * h + 1
        lam = e * (a_i + m[i] * b[i] * lam)
        dpoly = e * (delta_sym * a_i + m[i] * (b[i] + delta_sym) * dpoly)
        if i < depth:
            h_new = offset + ell * b[i] * a_i
            h = sympy.Min(h_new, 1) if cap else h_new
    coords = sum(ci * ri for ci, ri in zip(counts, r, strict=True))
    eta = num(sigma_e) * sympy.sqrt(coords / n)
    delta0 = eta / lam
    delta = eta * delta0 / dpoly.subs(delta_sym, delta0)
    log_lambda = sympy.log(lam)

    selection = []
    for i in range(depth):
        ell_i = sympy.log(k[i]) + num(C_lambda) * d[i] * sympy.log(lam * sympy.sqrt(n))
        selection.append(s[i] * ell_i - (k[i] - s[i]) * sympy.log(1 - sympy.exp(-ell_i)))
    slab = []
    for i in range(depth + 1):
        layer_spec = spec if i < depth else spec.output_spec()
        phi = _phi_closed(layer_spec, delta, b[i], r[i], d[i], num)
        slab.append(counts[i] * phi)
    total = sympy.Add(*selection) + sympy.Add(*slab)
    # max(total, T/2) as a Piecewise: it differentiates branchwise (Max would yield Heaviside terms)
    n_r_n = sympy.Piecewise((total, total >= coords / 2), (coords / 2, True))
    lead = sympy.Rational(1, 2) * (coords + num(C_lambda) * sum(s[i] * d[i] for i in range(depth)))
    return SymbolicRate(
        architecture=arch,
        prior=spec,
        kappa_log=kappa_log,
        n=n,
        symbols=symbols,
        values=values,
        n_r_n=n_r_n,
        delta=delta,
        log_lambda=log_lambda,
        selection=tuple(selection),
        slab=tuple(slab),
        leading_coefficient=lead,
    )


def _phi_closed(spec: PriorSpec, delta: Any, bound: Any, r: Any, d: Any, num: Any) -> Any:
    """Closed-form L2 bound per active group (docs/theory.md, 3.2), as in ``priors``: the
    family's :meth:`~ssbnn_theory.slabs.Slab.symbolic_phi`."""
    return spec.slab.symbolic_phi(spec, delta, bound, r, d, num)
