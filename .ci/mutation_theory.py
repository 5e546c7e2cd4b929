"""Mutation check of the theory suite: perturb each lemma's constants by 10%, run the tests.

Every mutant multiplies one constant of ``ssbnn_theory`` (a literal or a named constant of
a lemma, docs/theory.md section 8) by 1.1 or by 0.9 in a copy of the package, then runs the
tests that concern it (fast, deterministic ones first, ``-x``); a mutant is *killed* when a
test fails. The share of killed mutants is printed per lemma and in total; the exit status
is 1 when the share is below ``--target`` (default 0.9) or when a mutation site is missing
from the source (the list below must follow the code).

    python .ci/mutation_theory.py [--jobs 2] [--target 0.9] [--only L2] [--gap] [--baseline]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T = "tests/theory/"

# test selections (pytest arguments); cheap exact checks first so that most mutants die fast
L1_TESTS = (
    T + "test_selection.py::test_theory_prescription_by_hand",
    T + "test_lipschitz.py::test_bounded_activations_cap_the_envelope",
    T + "test_lipschitz.py::test_active_fan_in_counts_only_active_nodes",
    T + "test_selection.py::test_theory_prescription_properties",
    T + "test_lipschitz.py",
)
L2_TESTS = (
    T + "test_priors.py::test_sharp_small_ball_is_the_minimum_over_t",
    T + "test_priors.py::test_scale_mass_matches_scipy_and_stays_finite",
    T + "test_priors.py::test_group_lasso_density_is_the_gamma_mixture",
    T + "test_priors.py::test_one_dimensional_densities_integrate_to_one",
    T + "test_priors.py::test_horseshoe_density_against_adaptive_quadrature",
    T + "test_priors.py::test_sampler_moments",
    T + "test_symbolic.py::test_symbolic_equals_numeric_closed_form",
    T + "test_priors.py::test_sharp_bound_is_below_closed_form",
    T + "test_priors.py::test_small_ball_bound_below_true_mass",
)
L3_TESTS = (
    T + "test_selection.py::test_theory_prescription_by_hand",
    T + "test_selection.py::test_reference_formula_matches_the_reference_scripts",
    T + "test_selection.py::test_edge_prescription_matches_bai_formula",
    T + "test_selection.py::test_selection_mass_is_exact_for_extreme_probabilities",
    T + "test_selection.py",
)
L4_TESTS = (
    T + "test_priors.py::test_horseshoe_tail_closed_form_is_the_balanced_union_bound",
    T + "test_entropy.py::test_count_formula_is_achieved_by_an_explicit_grid",
    T + "test_entropy.py::test_binomial_tail_chernoff_by_hand",
    T + "test_priors.py::test_tail_bound_is_tight_for_gaussian_and_group_lasso",
    T + "test_entropy.py",
    T + "test_priors.py::test_tail_bound_above_monte_carlo",
)
L5_TESTS = (
    T + "test_kl.py::test_kl_at_fixed_points_by_adaptive_quadrature",
    T + "test_kl.py",
)
RATE_TESTS = (
    T + "test_rates.py::test_noise_floor_binds_by_hand",
    T + "test_symbolic.py::test_symbolic_equals_numeric_closed_form",
    T + "test_rates.py::test_result_terms_add_up_and_serialise",
)
GAP_TESTS = (T + "test_variational_gap.py",)
BOTH = (1.1, 0.9)  # bounds: a test must catch the perturbation in either direction
UP = (1.1,)  # equalities: a change in either direction breaks the same exact check


@dataclass(frozen=True)
class Mutant:
    """``old`` (exactly once in ``module``) becomes ``new`` with ``{f}`` replaced by the factor."""

    lemma: str
    module: str
    old: str
    new: str
    tests: tuple[str, ...]

    @property
    def factors(self) -> tuple[float, ...]:
        """Both directions where tests check a bound (L2, L4, gap); one where they check exact
        values (L1, L3, L5, rate: hand-computed values die in either direction alike)."""
        return BOTH if self.lemma in ("L2", "L4", "gap") else UP

    def label(self, factor: float) -> str:
        return f"{self.lemma} {self.module}: {self.old.strip()} x{factor:g}"


M = Mutant
MUTANTS = (
    # L1: activation constants, envelope, perturbation recursion
    M("L1", "enums.py", "Activation.RELU: 1.0,", "Activation.RELU: {f},", L1_TESTS),
    M("L1", "enums.py", "Activation.TANH: 1.0,", "Activation.TANH: {f},", L1_TESTS),
    M("L1", "enums.py", "Activation.SIGMOID: 0.25,", "Activation.SIGMOID: 0.25 * {f},", L1_TESTS),
    M("L1", "enums.py", "Activation.SILU: 1.09984,", "Activation.SILU: 1.09984 * {f},", L1_TESTS),
    M(
        "L1",
        "enums.py",
        "return 0.5 if self is Activation.SIGMOID",
        "return 0.5 * {f} if self is Activation.SIGMOID",
        L1_TESTS,
    ),
    M("L1", "lipschitz.py", "Activation.TANH: 1.0,", "Activation.TANH: {f},", L1_TESTS),
    M("L1", "lipschitz.py", "Activation.SIGMOID: 1.0}", "Activation.SIGMOID: {f}}", L1_TESTS),
    M(
        "L1",
        "lipschitz.py",
        "log_h[..., i], 0.0)",
        "log_h[..., i], float(np.log({f})))",
        L1_TESTS,
    ),
    M("L1", "lipschitz.py", "log_h[..., 0] = 0.0", "log_h[..., 0] = float(np.log({f}))", L1_TESTS),
    # L2: Gaussian constants, scale laws, closed forms, variance of the mixtures
    M(
        "L2",
        "slabs/base.py",
        "_LOG_2PI = float(np.log(2.0 * np.pi))",
        "_LOG_2PI = {f} * float(np.log(2.0 * np.pi))",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/base.py",
        "_LOG_4PI = float(np.log(4.0 * np.pi))",
        "_LOG_4PI = {f} * float(np.log(4.0 * np.pi))",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/base.py",
        "_LOG_2_OVER_PI = float(np.log(2.0 / np.pi))",
        "_LOG_2_OVER_PI = float(np.log({f} * 2.0 / np.pi))",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/base.py",
        "_SQRT2 = float(np.sqrt(2.0))",
        "_SQRT2 = {f} * float(np.sqrt(2.0))",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/group_lasso.py",
        "alpha = (d + 1.0) / 2.0\n        x = 0.5 * spec.kappa**2 * t",
        "alpha = {f} * (d + 1.0) / 2.0\n        x = 0.5 * spec.kappa**2 * t",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/group_lasso.py",
        "x = 0.5 * spec.kappa**2 * t",
        "x = {f} * 0.5 * spec.kappa**2 * t",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/group_lasso.py",
        "return s0 * t, 2.0 * s0 * t",
        "return {f} * s0 * t, {f} * 2.0 * s0 * t",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/group_horseshoe.py",
        "return s0 * g2 * t, 2.0 * s0 * g2 * t",
        "return {f} * s0 * g2 * t, 2.0 * {f} * s0 * g2 * t",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/group_horseshoe.py",
        "return s0 * c2 * g2 * t / (c2 + g2 * t), s0 * c2 * g2 * 2.0 * t / (c2 + 2.0 * g2 * t)",
        "return {f} * s0 * c2 * g2 * t / (c2 + g2 * t), "
        "{f} * s0 * c2 * g2 * 2.0 * t / (c2 + 2.0 * g2 * t)",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/base.py",
        "(bound + delta) ** 2 / (2 * v_lo)",
        "(bound + delta) ** 2 / (2 * {f} * v_lo)",
        L2_TESTS,
    ),
    M(
        "L2",
        "slabs/gaussian.py",
        "+ (bound + delta) ** 2 / (2 * sigma**2)",
        "+ (bound + delta) ** 2 / (2 * {f} * sigma**2)",
        L2_TESTS,
    ),
    # L3: selection mass and inclusion prescriptions
    M(
        "L3",
        "selection.py",
        "log_scale = log_lipschitz(arch) + 0.5 * log_n",
        "log_scale = log_lipschitz(arch) + {f} * 0.5 * log_n",
        L3_TESTS,
    ),
    M(
        "L3",
        "selection.py",
        "return s * log_inv + miss",
        "return {f} * s * log_inv + miss",
        L3_TESTS,
    ),
    M(
        "L3",
        "selection.py",
        "return s * log_inv + miss",
        "return s * log_inv + {f} * miss",
        L3_TESTS,
    ),
    M("L3", "selection.py", "np.log(total) + 0.1 * (", "np.log(total) + {f} * 0.1 * (", L3_TESTS),
    M(
        "L3",
        "selection.py",
        "c: float = 1e-9) -> np.ndarray:",
        "c: float = {f} * 1e-9) -> np.ndarray:",
        L3_TESTS,
    ),
    # L4: grid, binomial tails, slab tails, union-bound budget
    M(
        "L4",
        "entropy.py",
        "(2.0 * np.arange(1, count + 1) - 1.0)",
        "({f} * 2.0 * np.arange(1, count + 1) - 1.0)",
        L4_TESTS,
    ),
    M(
        "L4",
        "entropy.py",
        "(2.0 * np.arange(1, count + 1) - 1.0)",
        "(2.0 * np.arange(1, count + 1) - {f})",
        L4_TESTS,
    ),
    M("L4", "entropy.py", "grid = s_all * (m + 1.0) *", "grid = s_all * (m + {f}) *", L4_TESTS),
    M("L4", "entropy.py", "bound = -k * kl", "bound = -{f} * k * kl", L4_TESTS),
    M(
        "L4",
        "entropy.py",
        "union = log_binomial_coefficient(k, np.minimum(m, k)) + m * log_lambda",
        "union = log_binomial_coefficient(k, np.minimum(m, k)) + {f} * m * log_lambda",
        L4_TESTS,
    ),
    M(
        "L4",
        "slabs/gaussian.py",
        "np.log(d) + _LOG2 + special.log_ndtr(z)",
        "np.log(d) + {f} * _LOG2 + special.log_ndtr(z)",
        L4_TESTS,
    ),
    M(
        "L4",
        "slabs/group_lasso.py",
        "x = spec.kappa * np.exp(log_bound) / spec.sigma_0",
        "x = {f} * spec.kappa * np.exp(log_bound) / spec.sigma_0",
        L4_TESTS,
    ),
    M(
        "L4",
        "slabs/group_horseshoe.py",
        "_HS_C0 = 0.5 * float(np.log(np.pi / 2.0))",
        "_HS_C0 = {f} * 0.5 * float(np.log(np.pi / 2.0))",
        L4_TESTS,
    ),
    # L5: closed-form KL divergences
    M(
        "L5",
        "kl.py",
        "_HALF_LOG_2PI_E = 0.5 * float",
        "_HALF_LOG_2PI_E = {f} * 0.5 * float",
        L5_TESTS,
    ),
    M(
        "L5",
        "kl.py",
        "mean = b * np.exp(mu + 0.5 * sigma**2)",
        "mean = b * np.exp(mu + {f} * 0.5 * sigma**2)",
        L5_TESTS,
    ),
    M(
        "L5",
        "kl.py",
        "return _lognormal_gamma(-mu, sigma, a, b)",
        "return _lognormal_gamma({f} * -mu, sigma, a, b)",
        L5_TESTS,
    ),
    M(
        "L5",
        "kl.py",
        "- a * np.log(b) + special.gammaln(a) + mean",
        "- {f} * a * np.log(b) + special.gammaln(a) + mean",
        L5_TESTS,
    ),
    M(
        "L5",
        "kl.py",
        "0.5 * (ratio**2 + ((mu_q - mu_p) / sd_p) ** 2) - 0.5",
        "{f} * 0.5 * (ratio**2 + ((mu_q - mu_p) / sd_p) ** 2) - 0.5",
        L5_TESTS,
    ),
    M(
        "L5",
        "kl.py",
        "special.xlogy(q, q)\n            - special.xlogy(q, p)",
        "special.xlogy(q, q)\n            - {f} * special.xlogy(q, p)",
        L5_TESTS,
    ),
    # assembly of the rate (section 4.1)
    M(
        "rate",
        "rates.py",
        "np.full(n.shape, 0.5 * float(coords))",
        "np.full(n.shape, {f} * 0.5 * float(coords))",
        RATE_TESTS,
    ),
    M(
        "rate",
        "rates.py",
        "+ 0.5 * (np.log(float(coords)) - log_n)",
        "+ {f} * 0.5 * (np.log(float(coords)) - log_n)",
        RATE_TESTS,
    ),
    # the variational-gap step (section 4.5)
    M(
        "gap",
        "variational_gap.py",
        "_C0 = math.log(2.0) - 0.5",
        "_C0 = {f} * math.log(2.0) - 0.5",
        GAP_TESTS,
    ),
    M(
        "gap",
        "slabs/group_horseshoe.py",
        "base + width / 2.0 + sd",
        "base + {f} * width / 2.0 + sd",
        GAP_TESTS,
    ),
    M(
        "gap",
        "variational_gap.py",
        "a = max(2.0 * (k - 1), math.log(2.0 * k * arch.coordinates), 1.0)",
        "a = {f} * max(2.0 * (k - 1), math.log(2.0 * k * arch.coordinates), 1.0)",
        GAP_TESTS,
    ),
    M(
        "gap",
        "variational_gap.py",
        "_UNCONSTRAINED = SCALE_SD**2 / 4.0",
        "_UNCONSTRAINED = {f} * SCALE_SD**2 / 4.0",
        GAP_TESTS,
    ),
)
INFORMATIONAL = ("gap",)  # loose constants of a derived bound: with --gap, not in the share
COPY = ("ssbnn_theory", "tests/conftest.py", "tests/theory", "pyproject.toml")


def _copy_tree(dest: Path) -> None:
    for item in COPY:
        src, dst = ROOT / item, dest / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)


def _worker(indices: list[int]) -> None:
    """Run the mutants ``indices`` (of the job list) in this process, one JSON line each.

    One copy of the package and tests per worker; each mutant rewrites one module of the
    copy, drops ``ssbnn_theory`` and the test modules from ``sys.modules`` and runs
    ``pytest.main`` in-process (numpy, scipy, hypothesis and pytest are imported once).
    Index ``-1`` is the baseline: every selection on the unmutated copy.
    """
    import json

    import pytest

    jobs = _jobs()
    with tempfile.TemporaryDirectory(prefix="ssbnn-mutants-") as tmp:
        work = Path(tmp) / "copy"
        _copy_tree(work)
        os.chdir(work)
        sys.path.insert(0, str(work))
        for index in indices:
            if index < 0:
                tests = tuple(dict.fromkeys(t for m in MUTANTS for t in m.tests))
                module, old, new = "__init__.py", "", ""
            else:
                mutant, factor = jobs[index]
                tests, module = mutant.tests, mutant.module
                old, new = mutant.old, mutant.new.replace("{f}", repr(factor))
            path = work / "ssbnn_theory" / module
            original = path.read_text(encoding="utf-8")
            if old:
                path.write_text(original.replace(old, new, 1))
            for name in list(sys.modules):
                if name.split(".")[0] in ("ssbnn_theory", "theory", "conftest"):
                    del sys.modules[name]
            start = time.perf_counter()
            args = ["-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
            try:
                code = int(pytest.main(args))
            except Exception:  # a mutant that breaks the import is a detected change
                code = 1
            if code == 3:  # pytest's internal error: confirm in a fresh interpreter
                fresh = subprocess.run(
                    [sys.executable, "-m", "pytest", *args], cwd=work, capture_output=True
                )
                code = fresh.returncode
            seconds = time.perf_counter() - start
            path.write_text(original)
            # 1: a test failed, 2 and 3: collection or pytest itself broke on the mutant; 4 and
            # 5 (a test id not found, nothing collected) are errors of the list
            killed = code in (1, 2, 3)
            print(json.dumps({"index": index, "killed": killed, "seconds": seconds, "code": code}))
            sys.stdout.flush()


def _jobs() -> list[tuple[Mutant, float]]:
    return [(m, f) for m in MUTANTS for f in m.factors]


def _run_workers(indices: list[int], workers: int, timeout: float) -> dict[int, tuple[bool, float]]:
    """Split ``indices`` over ``workers`` processes; ``{index: (killed, seconds)}``."""
    import json

    shares = [indices[i::workers] for i in range(workers)]
    procs = []
    for share in shares:
        if not share:
            continue
        cmd = [sys.executable, __file__, "--worker", ",".join(map(str, share))]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    results: dict[int, tuple[bool, float]] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        for line in out.splitlines():
            if line.startswith("{") and '"index"' in line:
                row = json.loads(line)
                if row["code"] not in (0, 1, 2, 3):
                    raise SystemExit(
                        f"mutation check: pytest exit code {row['code']} for job {row['index']} "
                        "(a test id of .ci/mutation_theory.py not found?)"
                    )
                results[row["index"]] = (bool(row["killed"]), float(row["seconds"]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--only", default=None, help="one lemma: L1..L5, rate, gap")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run")
    parser.add_argument("--gap", action="store_true", help="also the variational-gap constants")
    parser.add_argument(
        "--baseline", action="store_true", help="first run every selection unmutated"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        _worker([int(i) for i in args.worker.split(",")])
        return 0
    missing = []
    for m in MUTANTS:
        count = (ROOT / "ssbnn_theory" / m.module).read_text(encoding="utf-8").count(m.old)
        if count != 1:
            missing.append(f"{m.module}: {m.old!r} occurs {count} times")
    if missing:
        print("mutation sites not found exactly once (update .ci/mutation_theory.py):")
        print("\n".join("  " + line for line in missing))
        return 1
    jobs = _jobs()
    chosen = [
        i
        for i, (m, _) in enumerate(jobs)
        if args.only in (None, m.lemma) and (args.gap or args.only == "gap" or m.lemma != "gap")
    ]
    start = time.perf_counter()
    # CI runs the whole suite unmutated just before; --baseline checks the selections here
    if args.baseline and _run_workers([-1], 1, args.timeout).get(-1, (True, 0.0))[0]:
        print("baseline: the selected tests fail on the unmutated package; fix them first")
        return 1
    results = _run_workers(chosen, args.jobs, args.timeout)
    by_lemma: dict[str, list[bool]] = {}
    for index in chosen:
        mutant, factor = jobs[index]
        killed, seconds = results.get(index, (False, float("nan")))
        by_lemma.setdefault(mutant.lemma, []).append(killed)
        if not killed:
            print(f"survived ({seconds:.1f} s): {mutant.label(factor)}")
    slowest = sorted((results[i][1], i) for i in chosen if i in results)[-3:]
    for seconds, index in reversed(slowest):
        print(f"slow ({seconds:.1f} s): {jobs[index][0].label(jobs[index][1])}")
    for lemma, kills in by_lemma.items():
        note = " (informational, not in the share)" if lemma in INFORMATIONAL else ""
        print(f"{lemma}: {sum(kills)}/{len(kills)} mutants killed{note}")
    total = [k for lemma, kills in by_lemma.items() if lemma not in INFORMATIONAL for k in kills]
    share = sum(total) / max(len(total), 1)
    elapsed = time.perf_counter() - start
    print(
        f"mutation check: {sum(total)}/{len(total)} lemma-constant mutants killed ({share:.0%}, "
        f"target {args.target:.0%}) in {elapsed:.0f} s"
    )
    return 0 if share >= args.target or not total else 1


if __name__ == "__main__":
    sys.exit(main())
