"""The layer products (``simulations.layers.products``): both implementations, the rule."""

from __future__ import annotations

import pytest
import torch

from simulations.layers import _SlabLinear, products

ONEDNN = products.HAS_ONEDNN
needs_onednn = pytest.mark.skipif(not ONEDNN, reason="this torch build has no oneDNN linear")

# Float32 sums of up to 2000 products of unit-scale numbers, accumulated in different orders
# by the two implementations: the absolute difference is of order sqrt(K) * 6e-8 * |terms|,
# a few 1e-6 relative to the results' scale; rtol = atol = 1e-4 leaves a margin of ~30.
TOL = {"rtol": 1e-4, "atol": 1e-4}


def operands(reps: int, batch: int, fan_in: int, fan_out: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(reps, batch, fan_in, generator=gen)
    weight = torch.randn(reps, fan_out, fan_in + 1, generator=gen) / fan_in**0.5
    grad = torch.randn(reps, batch, fan_out, generator=gen)
    return x, weight, grad


def all_products(x, weight, grad, onednn: bool):
    h = products.affine(x, weight[..., :-1], weight[..., -1], onednn)
    grad_weight = torch.empty_like(weight)
    products.weight_grad(grad, x, grad_weight[..., :-1], onednn)
    return h, grad_weight[..., :-1], products.input_grad(grad, weight[..., :-1], onednn)


@needs_onednn
@pytest.mark.parametrize("shape", [(3, 64, 2000, 6), (1, 512, 100, 256), (2, 40, 30, 20)])
def test_onednn_products_equal_the_batched_gemm(shape):
    """x W^T + b, G^T X and G W through oneDNN equal torch.bmm's and the plain expressions
    (strided operands included: the weights are a view with a bias column beside them)."""
    x, weight, grad = operands(*shape)
    fast = all_products(x, weight, grad, onednn=True)
    gemm = all_products(x, weight, grad, onednn=False)
    w, b = weight[..., :-1], weight[..., -1]
    exact = (x @ w.transpose(-1, -2) + b.unsqueeze(-2), grad.transpose(-1, -2) @ x, grad @ w)
    for a, g, e in zip(fast, gemm, exact, strict=True):
        assert a.shape == e.shape
        torch.testing.assert_close(a, g, **TOL)
        torch.testing.assert_close(a, e, **TOL)


@needs_onednn
def test_onednn_products_read_transposed_operands():
    """Feature-major inputs and gradients (transposed views, as the batched GEMM hands out)
    give the same values as contiguous ones, bit for bit."""
    x, weight, grad = operands(2, 300, 64, 96)
    assert products.input_grad_onednn(300, 96)
    x_t = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    grad_t = grad.transpose(-1, -2).contiguous().transpose(-1, -2)
    for a, b in zip(
        all_products(x, weight, grad, True), all_products(x_t, weight, grad_t, True), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@needs_onednn
def test_a_replicates_onednn_products_do_not_depend_on_the_others():
    """Replicate 1 of three equals the same replicate run alone, bit for bit."""
    x, weight, grad = operands(3, 128, 256, 64)
    together = all_products(x, weight, grad, True)
    alone = all_products(x[1:2], weight[1:2], grad[1:2], True)
    for a, b in zip(together, alone, strict=True):
        assert torch.equal(a[1:2], b)


def test_the_rule_takes_onednn_for_large_float32_products_on_the_cpu_only(monkeypatch):
    f32 = torch.empty(0)
    large = (500, 2000, 6)  # 6e6 multiply-adds per replicate
    assert products.use_onednn(*large, f32) is ONEDNN
    assert not products.use_onednn(*large, f32.double())
    assert not products.use_onednn(512, 20, 16, f32)  # 164k: below ONEDNN_MIN_MACS
    assert not products.use_onednn(512, 200, 12, f32)  # 1.2M: below too
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert not products.use_onednn(*large, f32)


def test_the_input_gradient_takes_onednn_only_for_long_contractions_and_batches():
    """W1's first layer (2000 -> 6) keeps the batched GEMM for ``G W`` (one oneDNN call per
    replicate was 0.2 to 0.5 times as fast there), a 256 -> 256 layer at B = 512 does not."""
    assert not products.input_grad_onednn(500, 6)
    assert not products.input_grad_onednn(64, 512)
    assert products.input_grad_onednn(512, 256)
    assert products.input_grad_onednn(products.INPUT_GRAD_MIN_BATCH, products.INPUT_GRAD_MIN_OUT)


@needs_onednn
def test_the_slab_layer_through_onednn_matches_the_batched_gemm(monkeypatch):
    """The fused slab layer's outputs and gradients with the products through oneDNN (a
    layer above the threshold) equal those with every product a batched GEMM."""
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(2, 256, 600, generator=gen)
    mu0 = torch.randn(2, 32, 601, generator=gen) * 0.05
    rho0 = torch.randn(2, 32, 601, generator=gen) - 4
    eps = torch.randn(2, 32, 601, generator=gen)
    gate0 = torch.rand(2, 32, generator=gen)
    weights = torch.randn(2, 256, 32, generator=gen)
    assert products.use_onednn(256, 600, 32, x0)

    def run():
        leaves = [t.clone().requires_grad_() for t in (x0, mu0, rho0, gate0)]
        x, mu, rho, gate = leaves
        h, kl = _SlabLinear.apply(x, mu, rho, eps, gate, 1.0)
        ((h * weights).sum() + kl.sum()).backward()
        return [h.detach(), kl.detach()] + [t.grad for t in leaves]

    fast = run()
    monkeypatch.setattr(products, "ONEDNN_MIN_MACS", 1 << 62)
    assert not products.use_onednn(256, 600, 32, x0)
    for a, b in zip(fast, run(), strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_only_x86_64_cpus_take_onednn(monkeypatch):
    """The rule was measured on x86-64 only: elsewhere no oneDNN operator is looked up."""
    monkeypatch.setattr(products, "X86_64", False)
    assert products._onednn_linear() is None
    monkeypatch.setattr(products, "X86_64", True)
    assert (products._onednn_linear() is not None) is torch.backends.mkldnn.is_available()
