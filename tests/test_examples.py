"""Every example runs with tiny sizes (SSBNN_QUICK=1), and every example is registered here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"

# example file -> a line its output must contain
EXAMPLES = {
    "teacher_ssghs.py": "kept nodes per layer",
}


def test_every_example_is_registered():
    found = {path.name for path in EXAMPLES_DIR.glob("*.py")}
    assert found == set(EXAMPLES), f"register new examples in {__file__}: {found ^ set(EXAMPLES)}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_quick(name):
    env = {**os.environ, "SSBNN_QUICK": "1", "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert EXAMPLES[name] in done.stdout
