"""The training step's loss: eager equals forward_kl, compiled equals eager, and the fallback."""

import shutil
from dataclasses import replace

import pytest
import torch

from simulations import step as step_module
from simulations.layers import products
from simulations.model import BayesianMLP, ModelConfig
from simulations.step import LossStep

D = torch.float64
N, B = 40, 10


def setup(prior="ss-gl", seeds=(3, 4), **kw):
    cfg = ModelConfig(p=5, hidden=(4, 3), prior=prior, prior_inclusion=0.3, **kw)
    model = BayesianMLP(cfg, list(seeds), dtype=D)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(len(seeds), B, 5, dtype=D, generator=gen)
    y = torch.randn(len(seeds), B, 1, dtype=D, generator=gen)
    return model, x, y


@pytest.mark.parametrize(
    ("prior", "kw"), [("ss-gl", {"input_spike": True}), ("ss-ghs", {}), ("edge-ss", {})]
)
def test_eager_step_is_forward_kl(prior, kw):
    """The eager step's loss is fit's loss from ``forward_kl`` bitwise, and draws the same
    noise (the generators end in the same state)."""
    model, x, y = setup(prior, **kw)
    twin, _, _ = setup(prior, **kw)
    loss, nll, kl = LossStep(model, N, B)(x, y, 0.4)
    f, kl_ref = twin.forward_kl(x)
    nll_ref = twin.likelihood.nll(f, y)
    loss_ref = (nll_ref * (N / B) + 0.4 * kl_ref) / N
    assert torch.equal(nll, nll_ref) and torch.equal(kl, kl_ref)
    assert torch.equal(loss, loss_ref)
    for a, b in zip(model.generators, twin.generators, strict=True):
        assert torch.equal(a.get_state(), b.get_state())


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("cc") is None, reason="no C++")
def test_compiled_step_equals_eager():
    """Three steps with the compiled loss (forward and backward) give the eager losses and
    gradients to float64 rounding; the compile time is recorded apart."""
    torch._dynamo.reset()
    results = []
    for compiled in (False, True):
        model, x, y = setup()
        step = LossStep(model, N, B, compile=compiled)
        out = []
        for t in range(3):
            model.temperature = 0.5 + 0.1 * t  # a schedule must not recompile or break
            loss, _, _ = step(x, y, 0.5)
            loss.sum().backward()
            out.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
            model.zero_grad()
        results.append(out)
        assert step.compiled == compiled and step.fallback is None
        assert (step.compile_s > 0) == compiled
    for (l1, g1), (l2, g2) in zip(*results, strict=True):
        torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
        for a, b in zip(g1, g2, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("cc") is None, reason="no C++")
@pytest.mark.skipif(not products.HAS_ONEDNN, reason="no oneDNN linear operator")
def test_compiled_step_runs_large_products_through_onednn(monkeypatch):
    """A float32 network whose layers pass the products' oneDNN rule (128 -> 256 -> 128 on
    128 rows: 2^22 multiply-adds per replicate) calls oneDNN from the compiled graph too,
    through the custom operators, for the forward products, the weight gradients and the
    second layer's input gradient, and gives the eager losses and gradients. Tolerance: the
    two paths sum in other orders in float32 (about 1e-7 relative per operation, sums of
    some 10^3 to 10^5 terms), so 1e-4 relative, 1e-6 of each gradient's scale absolute."""
    calls = []
    linear = products.onednn_linear

    def counted(a, b, bias=None):
        calls.append((tuple(a.shape), tuple(b.shape)))
        return linear(a, b, bias)

    monkeypatch.setattr(products, "onednn_linear", counted)
    torch._dynamo.reset()
    results, counts = [], []
    for compiled in (False, True):
        cfg = ModelConfig(p=128, hidden=(256, 128), prior="ss-gl", prior_inclusion=0.3)
        model = BayesianMLP(cfg, [3, 4])
        gen = torch.Generator().manual_seed(0)
        x, y = torch.randn(2, 128, 128, generator=gen), torch.randn(2, 128, 1, generator=gen)
        step = LossStep(model, 1024, 128, compile=compiled)
        calls.clear()
        out = []
        for _ in range(2):
            loss, _, _ = step(x, y, 0.5)
            loss.sum().backward()
            out.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
            model.zero_grad()
        assert step.compiled == compiled and step.fallback is None
        results.append(out)
        counts.append(len(calls))
    # Per step and replicate: two forward products, two weight gradients, one input gradient.
    assert counts == [2 * 2 * 5, 2 * 2 * 5]
    for (l1, g1), (l2, g2) in zip(*results, strict=True):
        torch.testing.assert_close(l1, l2, rtol=1e-4, atol=0)
        for a, b in zip(g1, g2, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * a.abs().max().item())


def test_partitioner_setting_is_local():
    """The compiled step's partitioner setting is in force only during its own calls."""
    config = torch._functorch.config
    before = config.ban_recompute_materialized_backward
    seen = []

    def spy(*args):
        seen.append(config.ban_recompute_materialized_backward)
        return step_module.network_loss(*args)

    model, x, y = setup()
    step = LossStep(model, N, B, compile=True)
    step._fn = spy
    for _ in range(2):
        step(x, y, 0.5)
    assert seen == [False, False]
    assert config.ban_recompute_materialized_backward == before


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("cc") is None, reason="no C++")
def test_new_shapes_compile_past_dynamos_default_limit(monkeypatch):
    """A process that has compiled the step for other shapes still compiles a new one:
    with Dynamo's recompile limit at 1, the second shape gets a graph of its own (past the
    limit Dynamo would run it eagerly) and the limit is back at 1 afterwards."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    graphs = []
    for seeds in ((3, 4), (3,)):
        model, x, y = setup(seeds=seeds)
        LossStep(model, N, B, compile=True)(x, y, 0.5)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1] > graphs[0] > 0
    assert torch._dynamo.config.recompile_limit == 1


def test_a_failed_compilation_falls_back_to_eager(monkeypatch):
    def broken(fn, **kw):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(step_module.torch, "compile", broken)
    model, x, y = setup()
    twin, _, _ = setup()
    step = LossStep(model, N, B, compile=True)
    with pytest.warns(RuntimeWarning, match="eager step"):
        loss, _, _ = step(x, y, 1.0)
    assert not step.compiled and "no compiler here" in step.fallback
    ref, _, _ = LossStep(twin, N, B)(x, y, 1.0)
    assert torch.equal(loss, ref)
    loss2, _, _ = step(x, y, 1.0)  # later steps eager, without a second warning
    assert torch.isfinite(loss2).all()


def test_fit_option_and_its_fallback(monkeypatch):
    """``TrainConfig.compile``: checked, not part of the checkpoint record, and a fit whose
    compilation fails trains with the eager step: the eager fit's numbers bitwise."""
    from simulations.train import TrainConfig, fit
    from ssbnn_theory.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="compile"):
        TrainConfig(steps=3, compile="yes")
    assert "compile" not in TrainConfig(steps=3, compile=True).record()

    def broken(fn, **kw):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, N, 5, dtype=D, generator=gen)
    y = torch.randn(2, N, 1, dtype=D, generator=gen)
    reports = []
    for compiled in (False, True):
        model, _, _ = setup()
        config = TrainConfig(steps=6, batch_size=B, compile=compiled, log_every=2)
        if compiled:
            monkeypatch.setattr(step_module.torch, "compile", broken)
            with pytest.warns(RuntimeWarning, match="eager step"):
                reports.append((fit(model, x, y, config), model))
        else:
            reports.append((fit(model, x, y, config), model))
    (r1, m1), (r2, m2) = reports
    assert r1.compile_s == 0.0 and r2.compile_s == 0.0
    assert (r1.loss_history == r2.loss_history).all()
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_auto_compiles_float32_cpu_fits_with_a_long_budget(monkeypatch):
    """``compile_pays``: a float32 model on an x86-64 CPU with a C++ compiler, small or
    large, with ``COMPILE_MIN_STEPS`` steps; not one step fewer, float64, another machine
    or no compiler."""
    from simulations.step import COMPILE_MIN_STEPS, compile_pays

    cfg = ModelConfig(p=5, hidden=(4, 3), prior="ss-gl", prior_inclusion=0.3)
    small, large = BayesianMLP(cfg, [1]), BayesianMLP(replace(cfg, p=128, hidden=(256, 4)), [1])
    steps = COMPILE_MIN_STEPS
    monkeypatch.setattr(products, "X86_64", True)
    monkeypatch.setattr(step_module, "_has_cpp_compiler", lambda: True)
    assert compile_pays(small, steps) and compile_pays(large, steps)
    assert not compile_pays(small, steps - 1)
    assert not compile_pays(setup()[0], 10 * steps)  # float64
    monkeypatch.setattr(step_module, "_has_cpp_compiler", lambda: False)
    assert not compile_pays(small, 10 * steps)
    monkeypatch.setattr(step_module, "_has_cpp_compiler", lambda: True)
    monkeypatch.setattr(products, "X86_64", False)
    assert not compile_pays(small, 10 * steps)


def test_fit_resolves_auto_by_the_rule(monkeypatch):
    """``TrainConfig.compile``: ``"auto"`` by default (any case), and ``fit`` hands
    ``LossStep`` what ``compile_pays`` answers for the fit's model and budget."""
    from simulations import train
    from simulations.train import TrainConfig, fit

    assert TrainConfig(steps=3).compile == "auto" == TrainConfig(steps=3, compile="Auto").compile
    asked, handed = [], []
    monkeypatch.setattr(train, "compile_pays", lambda *a: asked.append(a[1:]) or True)

    class Spy(LossStep):
        def __init__(self, *args, compile=False):
            handed.append(compile)
            super().__init__(*args, compile=False)

    monkeypatch.setattr(train, "LossStep", Spy)
    model, x, y = setup()
    fit(model, x, y, TrainConfig(steps=4, batch_size=5, log_every=2))
    fit(model, x, y, TrainConfig(steps=4, batch_size=5, log_every=2, compile=False))
    assert asked == [(4,)] and handed == [True, False]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_compiled_step_equals_eager_on_cuda():
    """On the GPU: the compiled loss and gradients equal the eager ones (float64)."""
    results = []
    for compiled in (False, True):
        model, x, y = setup()
        model = BayesianMLP(model.config, [3, 4], dtype=D, device="cuda")
        step = LossStep(model, N, B, compile=compiled)
        loss, _, _ = step(x.cuda(), y.cuda(), 0.5)
        loss.sum().backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        assert step.compiled == compiled and step.fallback is None
    (l1, g1), (l2, g2) = results
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
