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
