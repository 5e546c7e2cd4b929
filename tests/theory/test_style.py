"""The shared plotting style: palette, per-family colours, rc context, lazy matplotlib."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ssbnn_theory import InvalidParameterError, Prior, style


def test_one_distinct_okabe_ito_colour_and_marker_per_family():
    families = ["ss-ig", "ss-gl", "ss-ghs", "edge-ss", "dense"]
    colours = [style.prior_color(f) for f in families]
    assert len(set(colours)) == 5 and set(colours) <= set(style.OKABE_ITO.values())
    assert len({style.prior_marker(f) for f in families}) == 5
    assert style.prior_color(Prior.SS_GL) == style.prior_color("SS-GL")
    with pytest.raises(InvalidParameterError, match=r"^prior: "):
        style.prior_color("horseshoe")
    names = [style.prior_name(f) for f in families]
    assert names == ["SS-IG", "SS-GL", "SS-GHS", "edge SS", "dense"]


def test_context_applies_and_restores(tmp_path):
    import matplotlib

    before = matplotlib.rcParams["font.size"]
    with style.context():
        assert matplotlib.rcParams["font.size"] == style.RC_PARAMS["font.size"]
        assert matplotlib.rcParams["axes.spines.top"] is False
        fig, ax = style.figure(ncols=2)
        ax[0].plot([1, 2], [1, 2])
        path = style.save(fig, tmp_path / "f.png")
    assert matplotlib.rcParams["font.size"] == before
    assert path.read_bytes()[:4] == b"\x89PNG"
    fig, _ = style.figure()
    with pytest.raises(InvalidParameterError, match=r"^plot: "):
        style.save(fig, tmp_path / "f.svg")


def test_importing_the_package_does_not_import_matplotlib_or_sympy():
    code = (
        "import sys, ssbnn_theory; "
        "assert not {'matplotlib', 'sympy', 'torch'} & set(sys.modules), sys.modules.keys()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_data_figure_helpers(tmp_path):
    import numpy as np

    # a family, never a label: labels are not parsed (results tables carry prior_family)
    with pytest.raises(InvalidParameterError, match=r"^prior: "):
        style.prior_color("ss-gl(input_spike=True)")
    np.testing.assert_allclose(style.dodge([10.0, 20.0], 1, 3), [10.0, 20.0])
    left, right = style.dodge([10.0], 0, 2, factor=0.1), style.dodge([10.0], 1, 2, factor=0.1)
    np.testing.assert_allclose([left[0] * right[0], right[0] / left[0]], [100.0, np.exp(0.1)])
    with style.context():
        fig, ax = style.figure()
        ax.plot([100, 400], [1, 2])
        style.log_n_axis(ax, [100, 400])
        assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("training-set size")
        assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "400"]
        paths = style.save_png_pdf(fig, tmp_path / "new" / "f")
    assert [p.name for p in paths] == ["f.png", "f.pdf"] and all(p.is_file() for p in paths)
