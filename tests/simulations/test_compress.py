"""Compaction: the compact network computes the variational-mean network exactly."""

import pytest
import torch
from torch import nn

from simulations.compress import CompactNetwork, Latency, compact, compact_all, inference_latency
from simulations.model import BayesianMLP, ModelConfig
from ssbnn_theory.errors import InvalidParameterError

D = torch.float64


def model_with_dropped_nodes(prior, activation, input_spike=False):
    """A model whose replicates drop different nodes (inclusion logits set by hand), with
    every other parameter moved away from its initial value."""
    config = ModelConfig(
        p=6,
        hidden=(5, 4),
        prior=prior,
        activation=activation,
        prior_inclusion=0.2,
        input_spike=input_spike,
    )
    model = BayesianMLP(config, [1, 2, 3], dtype=D)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("theta"):
                p.copy_(3.0 * torch.sign(torch.randn(p.shape, generator=gen, dtype=D) + 0.3))
            else:
                p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=D))
        for layer in model.hidden_layers:  # replicate 2 drops every node of the first layer
            if prior != "dense" and layer is model.layers[0]:
                layer.theta[2] = -3.0
    return model


@pytest.mark.parametrize("prior", ["ss-ig", "ss-gl", "ss-ghs", "edge-ss", "dense"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_compact_network_equals_the_mean_function(prior, activation):
    """Float64, agreement to 1e-12: dropped nodes (whose constant outputs psi(b) are folded
    into the next bias, which matters for sigmoid), dropped inputs, an empty layer."""
    model = model_with_dropped_nodes(prior, activation, input_spike=prior == "ss-ig")
    x = torch.rand(40, 6, dtype=D) * 2 - 1
    mean = model.mean_function(x)
    kept = model.kept()
    for net in compact_all(model):
        r = net.replicate
        torch.testing.assert_close(net(x), mean[r], rtol=1e-12, atol=1e-12)
        assert net.widths == (
            int(kept.inputs[r].sum()),
            *(int(k[r].sum()) for k in kept.nodes),
            1,
        )
        assert net.inputs == tuple(kept.inputs[r].nonzero().flatten().tolist())
        assert not any(p.requires_grad for p in net.network.parameters())


def test_compaction_shrinks_and_is_a_plain_sequential():
    model = model_with_dropped_nodes("ss-gl", "relu")
    net = compact(model, 0)
    assert isinstance(net, CompactNetwork) and isinstance(net.network, nn.Sequential)
    linears = [m for m in net.network if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in linears] == list(net.widths[1:])
    assert sum(net.widths[1:-1]) < sum(model.config.hidden)
    empty = compact(model, 2)
    assert empty.widths[1] == 0  # every first-layer node dropped: a constant network
    x = torch.rand(5, 6, dtype=D)
    assert torch.equal(empty(x), empty(torch.rand(5, 6, dtype=D)))


def test_inference_latency_reports_both_networks():
    model = model_with_dropped_nodes("ss-ghs", "relu")
    lat = inference_latency(model, 1, batch=64, min_run_time=0.01)
    assert isinstance(lat, Latency)
    assert lat.compact_s > 0 and lat.dense_s > 0
    assert lat.speedup == pytest.approx(lat.dense_s / lat.compact_s)
    assert lat.dense_widths == (6, 5, 4, 1) and lat.compact_widths == compact(model, 1).widths


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: compact(m, 3), "replicate"),
        (lambda m: compact(m, -1), "replicate"),
        (lambda m: compact("model", 0), "model"),
        (lambda m: inference_latency(m, 0, batch=0), "batch"),
        (lambda m: inference_latency(m, 0, min_run_time=0), "min_run_time"),
        (lambda m: inference_latency(m, 0, threads=0), "threads"),
    ],
)
def test_bad_arguments_name_the_field(call, field):
    model = model_with_dropped_nodes("ss-gl", "relu")
    with pytest.raises(InvalidParameterError) as err:
        call(model)
    assert err.value.field == field
