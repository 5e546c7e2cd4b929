"""The package's import contract."""

import subprocess
import sys


def test_theory_never_imports_torch():
    code = "import ssbnn_theory, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version_is_exported():
    import simulations
    import ssbnn_theory

    assert ssbnn_theory.__version__ == simulations.__version__ != ""
