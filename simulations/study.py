"""A study as cells: expansion, seeds, identity, running one cell, running them all.

A study expands into cells, one per (student architecture, ``n``, prior); a
cell trains the study's ``R`` replicates as one batched model, evaluates them
and returns one row per replicate (:func:`run_cell`). :func:`run_study` runs
the cells that are not finished yet on an execution backend
(:mod:`simulations.execution`) and stores each as it arrives
(:mod:`simulations.store`).

Seeds (``simulations.rng``), all derived from the study seed ``s`` alone, so
results do not depend on the backend, the worker or the order cells run in:

* data: every cell draws from ``generate(..., seed=stream_seed(s, "design"))``,
  so all cells share the design's truth (e.g. the ``relu_teacher`` weights) and
  the test set, and replicate ``r`` at a given ``n`` sees the same training set
  under every prior and architecture (paired comparisons);
* model: replicate ``r`` of the cells at ``n`` gets seed
  ``stream_seed(stream_seed(s, "model", n), "model", r)``
  (``replicate_seeds``); the engine derives its initial values and noise from it;
* evaluation: ``stream_seed(s, "evaluate", n)``.

A cell's identity (``cell_id``) is the SHA-256 of its fully resolved
configuration (design name, version and parameters with file contents hashed,
``n_test``, model and training configurations with every default filled in,
metrics options, study seed, replicates, ``n``) and the package version. The
device and the backend are not part of it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import platform
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulations._io import TMP_PREFIX, git_commit, plain
from simulations.execution import (
    Execution,
    Failure,
    Interrupted,
    interruptible,
    run_tasks,
    shielded,
)
from simulations.rng import replicate_seeds, stream_seed
from simulations.schema import RESULT_COLUMNS, RUN_COLUMNS, options_json
from simulations.spec import Student, StudyPrior, StudySpec
from simulations.store import CellRecord, IntegrityWarning, ResultStore
from ssbnn_theory import __version__
from ssbnn_theory.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    from simulations.designs import SimulationData
    from simulations.model import BayesianMLP, ModelConfig
    from simulations.train import TrainConfig

__all__ = [
    "RESULT_COLUMNS",
    "RUN_COLUMNS",
    "Cell",
    "StudyInterrupted",
    "StudySummary",
    "expand",
    "git_commit",
    "run_cell",
    "run_study",
    "theory_rate",
]


@dataclass(frozen=True)
class Cell:
    """One (student, ``n``, prior) of a study: ``R`` replicates trained as one batched model.

    Attributes
    ----------
    spec
        The study.
    prior
        Its prior with hyperparameters.
    student
        Its student architecture.
    n
        Its training-set size.
    """

    spec: StudySpec
    prior: StudyPrior
    student: Student
    n: int

    @property
    def label(self) -> str:
        """``relu_teacher/ss-gl/16x16-relu/n=512``."""
        return f"{self.spec.design.name}/{self.prior.label}/{self.student.label}/n={self.n}"

    def resolved(self) -> dict[str, Any]:
        """The fully resolved configuration (JSON-ready) that defines the cell's results.

        ``train.compile`` changes the speed, not the results (up to float rounding, as the
        thread count does), so it is written as ``false`` whatever the spec says: a cell's
        id does not depend on it and stays that of the same cell made when the option was a
        boolean, off by default. ``train.search_steps`` left at its default (``None``: the
        search's arms take ``trial_steps``) is left out, so that cells keep the ids they had
        before the option existed."""
        design = self.spec.design
        params = {k: (design.files.get(k, v)) for k, v in design.params.items()}
        train = dataclasses.asdict(dataclasses.replace(self.train_config, compile=False))
        if train["search_steps"] is None:
            del train["search_steps"]
        return plain(
            {
                "package": __version__,
                "design": {
                    "name": design.name,
                    "version": design.version,
                    "params": params,
                    "n_test": design.n_test,
                },
                "seed": self.spec.seed,
                "replicates": self.spec.replicates,
                "n": self.n,
                "model": dataclasses.asdict(self.model_config),
                "train": train,
                "metrics": dataclasses.asdict(self.spec.metrics),
            },
            nonfinite_as_str=True,
        )

    @functools.cached_property
    def model_config(self) -> ModelConfig:
        """The cell's model configuration (built once, when the spec was read)."""
        return self.spec.model_config(self.prior, self.student)

    @property
    def train_config(self) -> TrainConfig:
        """The study's training configuration at the cell's ``n`` (``TrainConfig.at_n``)."""
        return self.spec.train_config().at_n(self.n)

    @functools.cached_property
    def cell_id(self) -> str:
        """First 16 hex digits of the SHA-256 of :meth:`resolved`."""
        text = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def data_seed(self) -> int:
        """Seed of :func:`simulations.designs.generate`, shared by every cell of the study."""
        return stream_seed(self.spec.seed, "design")

    @property
    def model_seeds(self) -> tuple[int, ...]:
        """One seed per replicate for the model (initial values, noise, minibatches)."""
        return replicate_seeds(
            stream_seed(self.spec.seed, "model", self.n), self.spec.replicates, "model"
        )

    @property
    def evaluate_seed(self) -> int:
        """Seed of the posterior draws of :func:`simulations.metrics.evaluate`."""
        return stream_seed(self.spec.seed, "evaluate", self.n)

    def generate_data(self) -> SimulationData:
        """The cell's :class:`simulations.designs.SimulationData` (drawn from :attr:`data_seed`)."""
        from simulations.designs import generate

        design = self.spec.design
        return generate(
            design.name,
            n=self.n,
            replicates=self.spec.replicates,
            seed=self.data_seed,
            n_test=design.n_test,
            **design.params,
        )

    def build_model(self, device: str = "cpu") -> BayesianMLP:
        """The cell's untrained :class:`simulations.model.BayesianMLP`, seeded by model_seeds."""
        from simulations.model import BayesianMLP

        return BayesianMLP(self.model_config, self.model_seeds, n=self.n, device=device)

    def record(self) -> CellRecord:
        """The manifest's entry for this cell."""
        summary = {
            "design": self.spec.design.name,
            "prior": self.prior.label,
            "hidden": list(self.student.hidden),
            "activation": self.student.activation.value,
            "n": self.n,
        }
        return CellRecord(self.cell_id, self.label, summary, self.spec.replicates)


def expand(spec: StudySpec) -> list[Cell]:
    """The study's cells: for each student, each ``n`` (increasing), each prior."""
    return [
        Cell(spec, prior, student, n)
        for student in spec.students
        for n in spec.n
        for prior in spec.priors
    ]


# --------------------------------------------------------------------------- theory


def theory_rate(cell: Cell, truth: Any) -> tuple[float, float, float]:
    """``(eps_n, r_n, d log eps_n^2 / d log n)`` from ``ssbnn_theory`` for the cell's student.

    The architecture is the student's widths and activation with the truth's
    active nodes ``s_l`` and weight bounds ``B_l`` (so ``xi_n = 0``); the prior is
    the one the engine fits (``ssbnn_theory.PriorSpec.from_engine``: ``sigma_0``;
    SS-GHS ``global_scale`` and ``slab_width``; SS-GL ``kappa = 1``, the engine
    learns it; the engine's Gaussian output layer), the prior inclusion
    probabilities are those the model uses at this ``n``, the likelihood is the
    design's (Gaussian with its ``sigma_e``; Bernoulli and categorical through the
    KL bounds of their links, docs/theory.md section 4.6), and ``kappa_log``
    comes from ``[metrics]``. NaN when the theory does not apply: the truth is
    not a network (``active_nodes`` is ``None``), has another depth or
    activation than the student, has more active nodes than the student's
    width, or the prior is a baseline (``edge-ss``, ``dense``).
    """
    from ssbnn_theory.architecture import Architecture
    from ssbnn_theory.priors import PriorSpec
    from ssbnn_theory.rates import contraction_rate

    nan = (math.nan, math.nan, math.nan)
    spec, student = cell.spec, cell.student
    config = spec.model_config(cell.prior, student)
    family = cell.prior.prior.family
    likelihood = str(getattr(spec.design.likelihood, "value", spec.design.likelihood))
    gaussian = likelihood == "gaussian"
    if (
        truth is None
        or truth.active_nodes is None
        or family is None
        or (gaussian and spec.design.noise_sd is None)
        or len(truth.active_nodes) != len(student.hidden)
        or truth.activation is not student.activation
        or any(s > k for s, k in zip(truth.active_nodes, student.hidden, strict=True))
    ):
        return nan
    arch = Architecture(
        p=spec.design.p,
        hidden=student.hidden,
        active=truth.active_nodes,
        bounds=truth.bounds,
        activation=student.activation,
        outputs=spec.design.outputs,
    )
    prior = PriorSpec.from_engine(family, config)
    kwargs = {
        "sigma_e": spec.design.noise_sd if gaussian else None,
        "likelihood": likelihood,
        "kappa_log": spec.metrics.kappa_log,
        "inclusion": np.asarray(config.inclusion_probs(cell.n), dtype=float),
        "conditions": False,
    }
    rate = contraction_rate(arch, prior, float(cell.n), **kwargs)
    slope = rate.local_slope()
    return float(rate.eps_n[0]), float(rate.r_n[0]), float(slope[0])


# --------------------------------------------------------------------------- one cell


def run_cell(
    cell: Cell,
    *,
    device: str = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Train and evaluate one cell; one row per replicate.

    Parameters
    ----------
    cell
        The cell.
    device
        Torch device (``"cpu"`` or ``"cuda"``).
    checkpoint_dir
        Folder for the training checkpoint ``<cell_id>.pt`` (and ``<cell_id>.pt.screened``
        with ``screen_inputs = "both"``): a cell killed mid-training resumes from it
        (bitwise the same on CPU); removed as soon as training ends.
    progress
        ``progress(step, total)`` after every training step.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`simulations.schema.RESULT_COLUMNS` and every metric of
        :func:`simulations.metrics.evaluate`, plus identity, seeds, cost, package
        versions, device and git commit.
    """
    from simulations.metrics import cost_metrics, evaluate
    from simulations.train import checkpoint_files, fit

    spec = cell.spec
    started = time.perf_counter()
    data = cell.generate_data()
    model = cell.build_model(device)
    checkpoint = None
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        checkpoint = Path(checkpoint_dir) / f"{cell.cell_id}.pt"

    def train(model: Any) -> Any:
        return fit(
            model, data.x_train, data.y_train, cell.train_config,
            checkpoint=checkpoint, progress=progress,
        )  # fmt: skip

    files = () if checkpoint is None else checkpoint_files(checkpoint)
    try:
        report = train(model)
    except InvalidParameterError as exc:
        unusable = [path for path in files if path.exists()]
        if exc.field != "checkpoint" or not unusable:
            raise
        for path in unusable:
            _set_aside_checkpoint(path, str(exc))
        model = cell.build_model(device)  # fit may have rearranged the first model's tensors
        report = train(model)
    for path in files:
        path.unlink(missing_ok=True)  # training is done; a later kill retrains the cell
    eps_n, r_n, local = theory_rate(cell, data.truth)
    metrics = evaluate(
        model,
        data,
        eps_n=eps_n if math.isfinite(eps_n) else None,
        draws=spec.metrics.draws,
        seed=cell.evaluate_seed,
    )
    cost = cost_metrics(report)
    outcome = _replicate_outcome(report, spec.replicates)
    wall = time.perf_counter() - started
    rows = []
    for r in range(spec.replicates):
        row: dict[str, Any] = {
            "study": spec.name,
            "cell_id": cell.cell_id,
            "design": spec.design.name,
            "design_version": spec.design.version,
            "prior": cell.prior.label,
            "prior_family": cell.prior.prior.value,
            "prior_options": options_json(cell.prior.options),
            "hidden": list(cell.student.hidden),
            "student": cell.student.label,
            "activation": cell.student.activation.value,
            "p": spec.design.p,
            "n": cell.n,
            "replicate": r,
            "seed": cell.model_seeds[r],
            "data_seed": cell.data_seed,
            **metrics.row(r, always=RESULT_COLUMNS),
            **{key: values[r].item() for key, values in cost.items()},
        }
        row.update(
            eps_n=eps_n,
            r_n=r_n,
            eps2_local_slope=local,
            cell_wall_s=wall,
            final_nll=float(report.final_nll[r]),
            final_kl=float(report.final_kl[r]),
            device=str(report.device),
            **_environment(),
        )
        row.update(outcome[r])
        if row["status"] == "failed":  # its numbers describe a diverged fit: none are kept
            for key in (*metrics, "final_nll", "final_kl", "rmse_test", "dH2_mean"):
                value = row.get(key)
                row[key] = None if isinstance(value, list) or value is None else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame[[*RESULT_COLUMNS, *(c for c in frame.columns if c not in RESULT_COLUMNS)]]


def _set_aside_checkpoint(path: Path, reason: str) -> Path:
    """Move an unusable checkpoint aside (``<id>.pt.corrupt-<time>``), warn; the new path."""
    from datetime import UTC, datetime

    aside = path.with_name(f"{path.name}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
    path.replace(aside)
    warnings.warn(
        f"checkpoint {path} could not be used ({reason}); moved to {aside}, the cell restarts",
        IntegrityWarning,
        stacklevel=3,
    )
    return aside


_STEP = re.compile(r"\bstep (\d+)")


def _replicate_outcome(report: Any, replicates: int) -> list[dict[str, Any]]:
    """Per replicate: ``status``, ``converged``, ``steps`` trained, ``failed_step``, ``failure``,
    and, for a fit with ``screen_inputs``, ``screened`` (whether its fit is a screened one).

    From the fit report's per-replicate arrays (``status``, ``converged``,
    ``steps_taken``, ``failure``, ``screened``); a report without them is a fixed-steps run
    in which every replicate trained ``report.steps`` steps.
    """

    def per_replicate(name: str) -> Any:
        values = getattr(report, name, None)
        return values if values is not None and len(values) == replicates else None

    status = per_replicate("status")
    converged = per_replicate("converged")
    taken = per_replicate("steps_taken")
    failure = per_replicate("failure")
    screened = per_replicate("screened")
    out = []
    for r in range(replicates):
        state = str(status[r]) if status is not None else "fixed"
        steps = int(taken[r]) if taken is not None else int(report.steps)
        reason = failure[r] if failure is not None else None
        failed_step = None
        if state == "failed":
            found = _STEP.search(str(reason or ""))
            failed_step = int(found.group(1)) if found else steps
            reason = str(reason) if reason else "diverged"
        out.append(
            {
                "status": state,
                "converged": None if converged is None else bool(converged[r]),
                "steps": steps,
                "failed_step": failed_step,
                "failure": None if state != "failed" else reason,
            }
        )
        if screened is not None:
            out[-1]["screened"] = bool(screened[r])
    return out


@functools.cache
def _environment() -> dict[str, Any]:
    """Package versions and the git commit of the source tree (``None`` outside a checkout)."""
    import torch

    return {
        "ssbnn_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "git_commit": git_commit(Path(__file__).resolve().parent),
    }


# --------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class StudySummary:
    """The outcome of :func:`run_study`.

    Attributes
    ----------
    name
        The study.
    out
        Its output folder.
    total
        Cells in the study.
    skipped
        Cells already finished before this run (resume).
    completed
        Cells finished by this run.
    failed
        Failures of this run.
    cancelled
        Cells not run (``fail_fast``).
    wall_s
        Wall time of this run.
    failed_replicates
        Replicates of this run's finished cells whose fit failed (their rows say why).
    """

    name: str
    out: Path
    total: int
    skipped: int
    completed: int
    failed: tuple[Failure, ...]
    cancelled: int
    wall_s: float
    failed_replicates: int = 0

    @property
    def ok(self) -> bool:
        """Every cell of the study is finished."""
        return self.skipped + self.completed == self.total

    def line(self) -> str:
        """One line for logs."""
        text = (
            f"study {self.name}: {self.skipped + self.completed}/{self.total} cells done "
            f"({self.completed} now, {self.skipped} before) in {self.wall_s:.1f} s; "
            f"results in {self.out}"
        )
        if self.failed:
            text += f"; {len(self.failed)} failed (see {self.out / 'manifest.json'})"
        if self.cancelled:
            text += f"; {self.cancelled} not run"
        if self.failed_replicates:
            text += f"; {self.failed_replicates} replicates failed (see ssbnn results)"
        return text


class StudyInterrupted(Interrupted):
    """:func:`run_study` stopped by SIGINT or SIGTERM; ``summary`` says what was kept."""

    def __init__(self, signum: int, summary: StudySummary) -> None:
        super().__init__(signum)
        self.summary = summary


def run_study(
    spec: StudySpec,
    out: str | Path,
    *,
    execution: Execution | None = None,
    device: str = "cpu",
    quiet: bool = False,
    wait: bool = False,
    cell_fn: Callable[..., pd.DataFrame] = run_cell,
) -> StudySummary:
    """Run every unfinished cell of ``spec`` and store each as it finishes.

    The output folder is locked for the whole run (:meth:`ResultStore.lock`):
    one writer per folder. SIGINT and SIGTERM stop the run (and every worker)
    at once; the cells stored until then are kept and :class:`StudyInterrupted`
    carries the summary.

    Parameters
    ----------
    spec
        The study.
    out
        Output folder (created; see :mod:`simulations.store` for its layout).
    execution
        Backend and options (default in-process).
    device
        ``"cpu"`` or ``"cuda"``.
    quiet
        No progress bars (failures and the summary are still reported).
    wait
        Wait for another writer's lock on ``out`` instead of refusing.
    cell_fn
        The function that runs one cell (``run_cell``; tests substitute their own).

    Raises
    ------
    InvalidParameterError
        ``device`` is not ``cpu``/``cuda`` or CUDA is not available; ``out``
        holds another study or cannot be written; ``scheduler`` does not answer.
    StudyLockedError
        Another process writes ``out`` and ``wait`` is false.
    StudyInterrupted
        SIGINT or SIGTERM arrived.
    """
    if device not in ("cpu", "cuda"):
        raise InvalidParameterError("device", "'cpu' or 'cuda'", device)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InvalidParameterError("device", "'cpu' (no CUDA device is available)", device)
    execution = execution or Execution()
    execution.check_scheduler()  # before anything is written
    store = ResultStore(out)
    with interruptible(), store.lock(wait=wait):
        return _run_locked(spec, Path(out), store, execution, device, quiet, cell_fn)


def _run_locked(
    spec: StudySpec,
    out: Path,
    store: ResultStore,
    execution: Execution,
    device: str,
    quiet: bool,
    cell_fn: Callable[..., pd.DataFrame],
) -> StudySummary:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    cells = expand(spec)
    meta = {
        "spec": str(spec.source) if spec.source else None,
        "package_version": __version__,
    }
    done = set(store.prepare(spec.name, [c.record() for c in cells], meta))
    todo = [c for c in cells if c.cell_id not in done]
    checkpoints = out / "checkpoints"
    for stale in checkpoints.glob(TMP_PREFIX + "*"):  # a checkpoint being written when killed
        stale.unlink(missing_ok=True)
    in_process = execution.backend.value == "in-process"
    bar = tqdm(
        total=len(cells),
        initial=len(done),
        desc=spec.name,
        unit="cell",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def run_with_bar(cell: Cell) -> pd.DataFrame:
        with tqdm(
            total=cell.train_config.total_steps,
            desc=cell.label,
            unit="step",
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as cell_bar:

            def progress(step: int, total: int) -> None:
                cell_bar.update(step - cell_bar.n)

            return cell_fn(cell, device=device, checkpoint_dir=checkpoints, progress=progress)

    if in_process and not quiet:
        fn: Callable[[Cell], pd.DataFrame] = run_with_bar
    else:
        fn = functools.partial(cell_fn, device=device, checkpoint_dir=checkpoints)

    written: list[str] = []
    failures: list[Failure] = []
    failed_replicates = [0]

    def on_result(cell: Cell, table: pd.DataFrame) -> None:
        with shielded():  # a signal waits until the cell is stored
            store.write_cell(cell.cell_id, table)
            written.append(cell.cell_id)
        if "status" in table:
            failed_replicates[0] += int((table["status"] == "failed").sum())
        bar.update(1)

    def on_failure(cell: Cell, failure: Failure) -> None:
        with shielded():
            store.record_failure(cell.cell_id, failure.error, failure.details)
            failures.append(failure)
        tqdm.write(f"cell {cell.label} [{cell.cell_id}] failed: {failure.error}", file=sys.stderr)

    def summary(cancelled: int) -> StudySummary:
        return StudySummary(
            name=spec.name,
            out=out,
            total=len(cells),
            skipped=len(done),
            completed=len(written),
            failed=tuple(failures),
            cancelled=cancelled,
            wall_s=time.perf_counter() - started,
            failed_replicates=failed_replicates[0],
        )

    try:
        outcome = run_tasks(
            todo,
            fn,
            key=lambda cell: cell.cell_id,
            execution=execution,
            on_result=on_result,
            on_failure=on_failure,
        )
    except Interrupted as exc:
        left = len(todo) - len(written) - len(failures)
        raise StudyInterrupted(exc.signum, summary(left)) from None
    finally:
        bar.close()
        if checkpoints.is_dir() and not any(checkpoints.iterdir()):
            checkpoints.rmdir()  # only cells killed mid-training leave a checkpoint
    return summary(len(outcome.cancelled))
