"""Contraction-rate bounds for node-sparse Bayesian neural networks (pure numpy/scipy/sympy).

The lemma-level bounds L1-L5 of docs/theory.md (each prior family's slab is one class of
:mod:`ssbnn_theory.slabs`), their assembly into the variational contraction rate
(:func:`contraction_rate`), comparison rates, the symbolic rate (:mod:`ssbnn_theory.symbolic`,
sympy imported lazily), targets and the shared plotting style (:mod:`ssbnn_theory.style`,
matplotlib imported lazily). Never imports torch.
"""

from importlib.metadata import PackageNotFoundError, version

from ssbnn_theory import slabs, style
from ssbnn_theory.architecture import Architecture
from ssbnn_theory.entropy import (
    log_binomial_tail,
    log_mass_outside_sieve,
    sieve_entropy,
)
from ssbnn_theory.enums import Activation, FanIn, Likelihood, Prior, parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.kl import kl_bernoulli, kl_lognormal_gamma, kl_lognormal_invgamma, kl_normal
from ssbnn_theory.lipschitz import (
    delta_star,
    envelope,
    log_delta_star,
    log_envelope,
    log_lipschitz,
    log_perturbation_bound,
    perturbation_bound,
)
from ssbnn_theory.priors import (
    PriorSpec,
    as_prior_spec,
    log_scale_mass,
    sample_slab,
    slab_log_density,
    slab_log_tail,
    slab_small_ball,
)
from ssbnn_theory.rates import (
    Condition,
    ContractionRate,
    EdgeRate,
    contraction_rate,
    dense_rate,
    edge_sparse_rate,
    hellinger_factor,
    kl_scale,
    local_slope,
    n_for_eps2,
)
from ssbnn_theory.selection import (
    edge_log_inv_inclusion,
    reference_inclusion_probs,
    reference_log_inv_inclusion,
    selection_mass,
    theory_inclusion_probs,
    theory_log_inv_inclusion,
)
from ssbnn_theory.slabs import SLABS, Slab, register_slab
from ssbnn_theory.symbolic import SymbolicRate, symbolic_rate
from ssbnn_theory.targets import (
    DEFAULT_ARCHITECTURE,
    HoelderRate,
    hoelder_architecture,
    hoelder_rate,
    relu_teacher_architecture,
    teacher_rate,
)
from ssbnn_theory.variational_gap import VariationalGap, variational_gap

try:
    __version__ = version("ssbnn")
except PackageNotFoundError:  # pragma: no cover - source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_ARCHITECTURE",
    "SLABS",
    "Activation",
    "Architecture",
    "Condition",
    "ContractionRate",
    "EdgeRate",
    "FanIn",
    "HoelderRate",
    "InvalidParameterError",
    "Likelihood",
    "Prior",
    "PriorSpec",
    "Slab",
    "SymbolicRate",
    "VariationalGap",
    "__version__",
    "as_prior_spec",
    "contraction_rate",
    "delta_star",
    "dense_rate",
    "edge_log_inv_inclusion",
    "edge_sparse_rate",
    "envelope",
    "hellinger_factor",
    "hoelder_architecture",
    "hoelder_rate",
    "kl_bernoulli",
    "kl_lognormal_gamma",
    "kl_lognormal_invgamma",
    "kl_normal",
    "kl_scale",
    "local_slope",
    "log_binomial_tail",
    "log_delta_star",
    "log_envelope",
    "log_lipschitz",
    "log_mass_outside_sieve",
    "log_perturbation_bound",
    "log_scale_mass",
    "n_for_eps2",
    "parse_enum",
    "perturbation_bound",
    "reference_inclusion_probs",
    "reference_log_inv_inclusion",
    "register_slab",
    "relu_teacher_architecture",
    "sample_slab",
    "selection_mass",
    "sieve_entropy",
    "slab_log_density",
    "slab_log_tail",
    "slab_small_ball",
    "slabs",
    "style",
    "symbolic_rate",
    "teacher_rate",
    "theory_inclusion_probs",
    "theory_log_inv_inclusion",
    "variational_gap",
]
