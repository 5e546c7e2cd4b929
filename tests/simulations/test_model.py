"""ModelConfig and BayesianMLP: validation, shapes, kept structure, posterior draws."""

import math

import numpy as np
import pytest
import torch

from simulations import model as model_module
from simulations.enums import Likelihood, Prior
from simulations.layers import draw_noise, replicate_generators
from simulations.model import BayesianMLP, ModelConfig
from ssbnn_theory.architecture import Architecture
from ssbnn_theory.enums import Activation
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.selection import (
    edge_log_inv_inclusion,
    reference_inclusion_probs,
    theory_log_inv_inclusion,
)

D = torch.float64


def build(prior="ss-ghs", seeds=(1, 2, 3), **kw):
    kw.setdefault("prior_inclusion", 0.2)
    config = ModelConfig(p=kw.pop("p", 5), hidden=kw.pop("hidden", (4, 3)), prior=prior, **kw)
    return BayesianMLP(config, list(seeds), dtype=D)


def set_theta(block, values):
    with torch.no_grad():
        block.theta.copy_(torch.as_tensor(values, dtype=D))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"p": 0}, "p"),
        ({"p": 2.5}, "p"),
        ({"hidden": ()}, "hidden"),
        ({"hidden": (4, 0)}, "hidden[1]"),
        ({"hidden": "wide"}, "hidden[0]"),
        ({"outputs": 0}, "outputs"),
        ({"activation": "gelu"}, "activation"),
        ({"prior": ("ss-gl",)}, "prior"),
        ({"prior": ("ss-gl", "lasso")}, "prior[1]"),
        ({"prior_inclusion": "theoretical"}, "prior_inclusion"),
        ({"prior_inclusion": (0.1,)}, "prior_inclusion"),
        ({"prior_inclusion": (0.1, 1.0)}, "prior_inclusion[1]"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"likelihood": "bernoulli", "outputs": 2}, "outputs"),
        ({"likelihood": "categorical"}, "outputs"),
        ({"sigma_e": -1.0}, "sigma_e"),
        ({"sigma_e": 1.0, "likelihood": "bernoulli"}, "sigma_e"),
        ({"sigma_0": 0}, "sigma_0"),
        ({"global_scale": float("inf")}, "global_scale"),
        ({"slab_width": -2.0}, "slab_width"),
        ({"temperature": 0.0}, "temperature"),
        ({"input_inclusion": 1.5}, "input_inclusion"),
        ({"inclusion_init": 1.0}, "inclusion_init"),
        ({"rho_init": float("nan")}, "rho_init"),
        ({"rho_init": (-3.0, -6.0)}, "rho_init"),
        ({"rho_init": (-3.0, float("inf"), -6.0)}, "rho_init[1]"),
        ({"rho_init": "-6"}, "rho_init"),
        ({"rho_init": "wide"}, "rho_init"),
        ({"input_spike": "false"}, "input_spike"),
        ({"straight_through": "false"}, "straight_through"),
        ({"straight_through": 0}, "straight_through"),
    ],
)
def test_config_rejects_bad_values(kwargs, field):
    base = {"p": 5, "hidden": (4, 3)}
    with pytest.raises(InvalidParameterError) as err:
        ModelConfig(**{**base, **kwargs})
    assert err.value.field == field


def test_config_normalises_strings_and_broadcasts():
    config = ModelConfig(p=5, hidden=[4, 3], activation="TANH", prior="ss-gl", prior_inclusion=0.3)
    assert config.hidden == (4, 3) and config.activation is Activation.TANH
    assert config.prior == (Prior.SS_GL, Prior.SS_GL)
    assert config.prior_inclusion == (0.3, 0.3) and config.likelihood is Likelihood.GAUSSIAN
    assert ModelConfig(p=5, hidden=6).hidden == (6,)


@pytest.mark.parametrize("prior", ["ss-gl", "ss-ghs", "ss-ig", "edge-ss", "dense"])
def test_each_weight_layer_starts_at_its_own_rho(prior):
    """Every Gaussian factor of a layer (weights, biases, slab scales) starts at that layer's
    ``rho_init``; a list of equal numbers builds the model that one number builds."""
    rhos = (-3.0, -6.0, -4.5)
    model = build(prior, rho_init=rhos)
    assert model.config.rho_inits == rhos
    for layer, rho in zip(model.layers, rhos, strict=True):
        spreads = [v for name, v in layer.named_parameters() if "rho" in name]
        assert spreads and all((v == rho).all() for v in spreads), (layer, rho)
    one, listed = build(prior, rho_init=-5.0), build(prior, rho_init=[-5.0] * 3)
    assert one.config.rho_inits == (-5.0,) * 3
    for (name, a), (_, b) in zip(one.named_parameters(), listed.named_parameters(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("hidden", [(7,), (6, 5), (5, 4, 3)])
def test_named_starts_widen_the_first_layer_alone(hidden):
    """``"auto"`` (the default) starts the first hidden layer at rho -3 and every later layer
    and the output at -6; ``"reference"`` starts all at -6, as the number -6 does."""
    auto = ModelConfig(p=9, hidden=hidden)
    assert auto.rho_init == "auto"
    assert auto.rho_inits == (-3.0,) + (-6.0,) * len(hidden)
    reference = ModelConfig(p=9, hidden=hidden, rho_init=" Reference")
    assert reference.rho_init == "reference"
    assert reference.rho_inits == ModelConfig(p=9, hidden=hidden, rho_init=-6).rho_inits
    assert reference.rho_inits == (-6.0,) * (len(hidden) + 1)


def test_reference_inclusion_probabilities_come_from_the_theory_package():
    config = ModelConfig(p=30, hidden=(16, 8), prior=("ss-ghs", "edge-ss"), outputs=1)
    with pytest.raises(InvalidParameterError) as err:
        config.inclusion_probs()
    assert err.value.field == "n"
    lam = config.inclusion_probs(2000)
    assert lam[0] == pytest.approx(reference_inclusion_probs(30, (16, 8), 1, 2000)[0], rel=1e-12)
    edge = np.exp(-edge_log_inv_inclusion(Architecture(p=30, hidden=(16, 8)), 2000))
    assert lam[1] == pytest.approx(float(edge), rel=1e-12)
    model = BayesianMLP(config, [0], n=2000)
    assert model.layers[0].indicators.prior_inclusion == pytest.approx(lam[0])


def test_theory_inclusion_is_carried_in_log_space():
    """``lambda = exp(-log k - d log(Lambda sqrt n))`` underflows float64; the KL still sees
    ``-log lambda``: a kept node of the frozen model costs exactly ``log(1/lambda)`` nats."""
    config = ModelConfig(p=20, hidden=(16, 8), prior="ss-gl", prior_inclusion="theory")
    arch = Architecture(p=20, hidden=(16, 8), activation="relu")
    expected = theory_log_inv_inclusion(arch, 8192)
    lam = config.inclusion_probs(8192)
    np.testing.assert_allclose([-v for v in lam], expected, rtol=1e-12)
    deep = ModelConfig(p=20, hidden=(64,) * 8, prior="ss-gl", prior_inclusion="theory")
    assert min(deep.inclusion_probs(10**6)) < math.log(np.finfo(np.float64).tiny)
    model = BayesianMLP(config, [0], n=8192, dtype=torch.float64)
    model.freeze_masks()
    layer = model.layers[0]
    before = layer.kl().detach()
    layer.indicators.frozen_mask[0, 0] = 0.0
    after = layer.kl().detach()
    slab = layer.slab_kl()[0, 0].detach()
    log_out = -math.exp(-expected[0])  # log(1 - lambda)
    assert float(before - after) == pytest.approx(expected[0] + log_out + float(slab), rel=1e-12)
    assert torch.isfinite(model.forward_kl(torch.zeros(1, 3, 20, dtype=torch.float64))[1]).all()


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((ModelConfig(p=2, hidden=(2,), prior_inclusion=0.5), []), {}, "replicate_seeds"),
        ((ModelConfig(p=2, hidden=(2,), prior_inclusion=0.5), [1.5]), {}, "replicate_seeds"),
        (
            (ModelConfig(p=2, hidden=(2,), prior_inclusion=0.5), [1]),
            {"dtype": torch.int64},
            "dtype",
        ),
        (({"p": 2}, [1]), {}, "config"),
    ],
)
def test_model_rejects_bad_arguments(args, kwargs, field):
    with pytest.raises(InvalidParameterError) as err:
        BayesianMLP(*args, **kwargs)
    assert err.value.field == field


# --------------------------------------------------------------------------- passes


@pytest.mark.parametrize("prior", ["ss-ig", "ss-gl", "ss-ghs", "edge-ss", "dense"])
def test_forward_shapes_and_kl(prior):
    model = build(prior, input_spike=prior == "ss-gl")
    x = torch.randn(3, 8, 5, dtype=D)
    f, kl = model.forward_kl(x)
    assert f.shape == (3, 8, 1) and kl.shape == (3,)
    torch.testing.assert_close(kl, model.kl(), rtol=1e-12, atol=1e-10)
    assert model(x).shape == (3, 8, 1)


def test_categorical_outputs():
    model = build("ss-gl", likelihood="categorical", outputs=3)
    assert model(torch.randn(3, 4, 5, dtype=D)).shape == (3, 4, 3)


def test_replicate_initial_values_depend_on_their_own_seed_only():
    one = build("ss-ghs", seeds=(7,))
    three = build("ss-ghs", seeds=(5, 7, 9))
    for (name, a), (_, b) in zip(one.named_parameters(), three.named_parameters(), strict=True):
        assert torch.equal(a[0], b[1]), name


@pytest.mark.parametrize(
    ("x", "field"),
    [(torch.zeros(3, 4, 6), "x"), (torch.zeros(2, 4, 5), "x"), (torch.zeros(5), "x"), (None, "x")],
)
def test_forward_rejects_bad_inputs(x, field):
    with pytest.raises(InvalidParameterError) as err:
        build()(x)
    assert err.value.field == field


# --------------------------------------------------------------------------- kept structure


def test_kept_nodes_and_inputs_of_node_priors():
    model = build("ss-ig", seeds=(1, 2))
    set_theta(model.layers[0], [[3, -3, 3, -3], [-3, -3, -3, -3]])
    set_theta(model.layers[1], [[3, 3, -3], [3, -3, -3]])
    kept = model.kept()
    assert kept.nodes[0].tolist() == [[True, False, True, False], [False] * 4]
    assert kept.nodes[1].tolist() == [[True, True, False], [True, False, False]]
    # without an input spike, every input feeds the kept first-layer nodes of replicate 0
    assert kept.inputs.tolist() == [[True] * 5, [False] * 5]


def test_kept_inputs_with_an_input_spike():
    model = build("ss-ig", seeds=(1,), input_spike=True)
    set_theta(model.input_spike, [[3, -3, 3, 3, -3]])
    assert model.kept().inputs.tolist() == [[True, False, True, True, False]]
    assert model.input_inclusion_probs().shape == (1, 5)
    mean_w, _ = model.mean_weights()[0]
    assert (mean_w[0][:, [1, 4]] == 0).all() and (mean_w[0][:, [0, 2, 3]] != 0).all()


def test_kept_structure_of_edge_priors():
    """A node is kept when one incoming weight is; an input when it feeds a kept node."""
    model = build("edge-ss", seeds=(1,), p=3, hidden=(2, 2))
    theta = -3.0 * torch.ones(1, 2, 4, dtype=D)
    theta[0, 0, 1] = 3.0  # node 0 of layer 1 <- input 1; node 1 only has its bias kept
    theta[0, 1, 3] = 3.0
    set_theta(model.layers[0], theta)
    theta2 = -3.0 * torch.ones(1, 2, 3, dtype=D)
    theta2[0, 1, 0] = 3.0
    set_theta(model.layers[1], theta2)
    kept = model.kept()
    assert kept.nodes[0].tolist() == [[True, False]]
    assert kept.nodes[1].tolist() == [[False, True]]
    assert kept.inputs.tolist() == [[False, True, False]]
    assert model.inclusion_probs()[0].shape == (1, 2, 3)


def test_dense_layers_keep_everything():
    model = build("dense")
    kept = model.kept()
    assert all(k.all() for k in kept.nodes) and kept.inputs.all()


# --------------------------------------------------------------------------- posterior draws


def test_sample_masks_are_bernoulli_per_replicate():
    """4000 draws: node frequencies within 5 binomial sds of the inclusion probabilities;
    replicate r's masks depend on generators[r] only."""
    model = build("ss-gl")
    set_theta(model.layers[0], torch.linspace(-2, 2, 12, dtype=D).view(3, 4))
    masks = model.sample_masks(4000, replicate_generators([1, 2, 3]))
    assert [m.shape for m in masks] == [(4000, 3, 4), (4000, 3, 3)]
    p = model.inclusion_probs()[0]
    freq = masks[0].double().mean(0)
    assert (torch.abs(freq - p) < 5 * torch.sqrt(p * (1 - p) / 4000)).all()
    again = model.sample_masks(4000, replicate_generators([1, 99, 3]))
    assert torch.equal(masks[0][:, 0], again[0][:, 0]) and torch.equal(
        masks[1][:, 2], again[1][:, 2]
    )
    assert not torch.equal(masks[0][:, 1], again[0][:, 1])


def test_sample_masks_of_edge_and_dense_layers():
    model = build(("edge-ss", "dense"))
    masks = model.sample_masks(50, replicate_generators([1, 2, 3]))
    assert masks[1].all()
    probs = model.inclusion_probs()[0]
    assert probs.shape == (3, 4, 5) and masks[0].dtype == torch.bool


def test_sample_functions_are_exact_draws():
    """Draw d of replicate r equals the network evaluated at the d-th joint draw of
    replicate r's noise (weights and Bernoulli masks), for shared and per-replicate x."""
    model = build("ss-ghs", input_spike=True)
    x = torch.randn(6, 5, dtype=D)
    f = model.sample_functions(x, 3, replicate_generators([4, 5, 6]))
    assert f.shape == (3, 3, 6, 1)
    gens = replicate_generators([4, 5, 6])
    normal, uniform = draw_noise(
        gens, sum(model._normal_counts), sum(model._uniform_counts), draws=3, dtype=D
    )
    normals = list(torch.split(normal, model._normal_counts, -1))
    uniforms = list(torch.split(uniform, model._uniform_counts, -1))
    columns = model.input_spike.mask_from_noise(uniforms.pop(0))
    normals.pop(0)
    h = x.expand(3, 3, 6, 5) * columns.unsqueeze(-2)
    for i, layer in enumerate(model.layers):
        w, b = layer.weights_from_noise(normals[i], uniforms[i])
        h = h @ w.transpose(-1, -2) + b.unsqueeze(-2)
        if i < len(model.layers) - 1:
            h = torch.relu(h)
    torch.testing.assert_close(f, h.detach(), rtol=1e-12, atol=1e-12)
    per_replicate = model.sample_functions(x.expand(3, 6, 5), 3, replicate_generators([4, 5, 6]))
    torch.testing.assert_close(f, per_replicate, rtol=1e-12, atol=1e-12)


def test_sample_functions_do_not_depend_on_the_chunk_size(monkeypatch):
    model = build("edge-ss")
    x = torch.randn(10, 5, dtype=D)
    whole = model.sample_functions(x, 7, replicate_generators([1, 2, 3]))
    monkeypatch.setattr(model_module, "_SAMPLE_CHUNK_ELEMENTS", 1)  # one draw per chunk
    chunked = model.sample_functions(x, 7, replicate_generators([1, 2, 3]))
    torch.testing.assert_close(whole, chunked, rtol=1e-12, atol=1e-12)


def test_sample_functions_concentrate_on_the_mean_function():
    """With every indicator on (theta = 20) and sd ~ 2.5e-3 (rho = -6), draws stay within
    5e-2 of the mean network (the spread of beta and of the scales is that small)."""
    model = build("ss-gl", rho_init="reference")
    for layer in model.hidden_layers:
        set_theta(layer, torch.full((3, layer.out_features), 20.0))
    x = torch.rand(20, 5, dtype=D)
    f = model.sample_functions(x, 5, replicate_generators([1, 2, 3]))
    assert (f - model.mean_function(x)).abs().max() < 5e-2


@pytest.mark.parametrize(
    ("draws", "gens", "field"),
    [(0, 3, "draws"), (True, 3, "draws"), (2, 2, "generators")],
)
def test_draws_reject_bad_arguments(draws, gens, field):
    model = build()
    with pytest.raises(InvalidParameterError) as err:
        model.sample_functions(torch.zeros(4, 5), draws, replicate_generators(range(gens)))
    assert err.value.field == field


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_model_runs_on_cuda():
    config = ModelConfig(p=5, hidden=(4, 3), prior="ss-ghs", prior_inclusion=0.2)
    model = BayesianMLP(config, [1, 2], device="cuda")
    x = torch.randn(2, 8, 5, device="cuda")
    f, kl = model.forward_kl(x)
    assert f.device.type == "cuda" and kl.shape == (2,)
    gens = replicate_generators([1, 2], device="cuda")
    assert model.sample_functions(x[0], 4, gens).shape == (4, 2, 8, 1)


def test_dense_models_need_no_training_set_size():
    """The reference inclusion prescription needs n only when a layer has a spike."""
    BayesianMLP(ModelConfig(p=3, hidden=(4, 2), prior="dense"), [1])
    with pytest.raises(InvalidParameterError) as err:
        BayesianMLP(ModelConfig(p=3, hidden=(4, 2), prior=("dense", "ss-gl")), [1])
    assert err.value.field == "n"
