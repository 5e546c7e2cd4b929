"""Variational linear layers with a leading replicate axis, one class per prior family.

Every parameter carries the replicate axis first: weights ``[R, out, in]`` (node
``j``'s incoming weights are row ``j``), biases ``[R, out]``. Inputs are
``[R, batch, in]`` and outputs ``[R, batch, out]``. Replicate ``r`` draws its
initial values and all its noise from its own generator, so replicate ``r`` of a
batched layer equals an ``R = 1`` layer built with the same generator.

Families (``docs/engine.md``, "Layers", has the full parameterisation):

* :class:`NodeSpikeSlabLinear` (:mod:`~simulations.layers.node`) — node spike-and-slab,
  non-centred: ``w_j = z_j * scale_j * beta_j`` for the group ``w_j = (W[j, :], b[j])``, with
  ``z_j ~ Bernoulli(sigmoid(theta_j))`` and ``beta_j ~ N(mu_j, softplus(rho_j)^2)``.
  The family's scale factor (:mod:`~simulations.layers.scales`, found through
  :data:`~simulations.layers.registry.SCALE_FACTORS`) decides ``scale_j``:
  1 (``ss-ig``, :class:`~simulations.layers.scales.GaussianScale`), ``tau_j`` (``ss-gl``,
  :mod:`~simulations.layers.group_lasso`) or ``g tau_j`` (``ss-ghs``,
  :mod:`~simulations.layers.group_horseshoe`, regularised when a slab width ``c`` is given).
* :class:`EdgeSpikeSlabLinear` (:mod:`~simulations.layers.edge`) — one inclusion indicator
  per weight and bias, Gaussian slab (Bai, Song & Cheng 2020).
* :class:`MeanFieldLinear` (:mod:`~simulations.layers.dense`) — dense mean-field Gaussian
  (Bayes by backprop); also the output layer of every model.
* :class:`InputSpike` (:mod:`~simulations.layers.inputs`) — a node spike on the inputs.

Noise protocol (:mod:`~simulations.layers.noise`): a layer consumes ``normal_count`` standard
normals and ``uniform_count`` uniforms per replicate per draw. Callers pass them as
``[..., R, count]`` tensors (see :func:`draw_noise`), so one generator call per
replicate serves a whole network. The fused autograd functions of the training pass are in
:mod:`~simulations.layers.fused`; each layer answers for its own exact draws
(``weights_from_noise``, ``node_mask``).
"""

from __future__ import annotations

from simulations.layers.dense import MeanFieldLinear, VariationalLinear
from simulations.layers.edge import EdgeSpikeSlabLinear
from simulations.layers.fused import _ConcreteGate, _SlabLinear
from simulations.layers.group_horseshoe import _GroupHorseshoeDraw
from simulations.layers.group_lasso import _GroupLassoDraw
from simulations.layers.inputs import InputSpike
from simulations.layers.node import NodeSpikeSlabLinear
from simulations.layers.noise import draw_noise, replicate_generators

__all__ = [
    "EdgeSpikeSlabLinear",
    "InputSpike",
    "MeanFieldLinear",
    "NodeSpikeSlabLinear",
    "VariationalLinear",
    "_ConcreteGate",
    "_GroupHorseshoeDraw",
    "_GroupLassoDraw",
    "_SlabLinear",
    "draw_noise",
    "replicate_generators",
]
