"""Execution backends: one code path, failures isolated, a dead Dask worker's task retried."""

from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path

import cloudpickle
import pytest

from simulations.execution import Backend, Execution, run_tasks
from ssbnn_theory.errors import InvalidParameterError

# Dask workers cannot import this test module by name: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

DASK_WARNINGS = [
    # distributed logs (does not warn about) a lost worker; this is the one warning a
    # LocalCluster emits on a slow, busy machine while it starts its worker processes
    "ignore:Creating scratch directories is taking a surprisingly long time:UserWarning",
]


def _collect(tasks, fn, execution, key=str):
    results, failures = {}, {}
    outcome = run_tasks(
        tasks,
        fn,
        key=key,
        execution=execution,
        on_result=lambda task, result: results.__setitem__(task, result),
        on_failure=lambda task, failure: failures.__setitem__(task, failure),
    )
    return outcome, results, failures


def _kill_worker_once(task: tuple[int, str]) -> int:
    """Square ``value``; the first attempt at ``value == 2`` kills its own worker process."""
    value, marker = task
    if value < 0:
        raise ValueError(f"negative value {value}")
    if value == 2 and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return value * value


def test_in_process_reports_results_and_isolates_failures():
    # math.factorial(-1) raises ValueError: that task fails, the others complete
    outcome, results, failures = _collect([3, -1, 4], math.factorial, Execution())
    assert results == {3: 6, 4: 24}
    assert outcome.completed == ("3", "4")
    assert [f.key for f in outcome.failed] == ["-1"]
    assert failures[-1].error.startswith("ValueError: factorial() not defined for negative")
    assert "Traceback" in failures[-1].details
    assert outcome.cancelled == ()


def test_fail_fast_stops_at_the_first_failure():
    outcome, results, _ = _collect([3, -1, 4, 5], math.factorial, Execution(fail_fast=True))
    assert results == {3: 6}
    assert outcome.cancelled == ("4", "5")


def test_pool_matches_in_process():
    tasks = [5, -2, 7, 0]
    serial = _collect(tasks, math.factorial, Execution())
    pooled = _collect(tasks, math.factorial, Execution("pool", workers=2))
    assert pooled[1] == serial[1]
    assert set(pooled[0].completed) == set(serial[0].completed)
    assert pooled[2][-2].error == serial[2][-2].error


@pytest.mark.filterwarnings(*DASK_WARNINGS)
def test_dask_local_cluster_retries_a_task_whose_worker_died(tmp_path):
    marker = tmp_path / "killed"
    tasks = [(value, str(marker)) for value in range(-1, 4)]
    outcome, results, failures = _collect(
        tasks, _kill_worker_once, Execution("dask", workers=2), key=lambda t: str(t[0])
    )
    assert marker.exists(), "the worker-killing attempt did not run"
    assert [failure.error for failure in failures.values()] == ["ValueError: negative value -1"]
    assert "_kill_worker_once" in failures[(-1, str(marker))].details
    assert {task[0]: value for task, value in results.items()} == {0: 0, 1: 1, 2: 4, 3: 9}
    assert sorted(outcome.completed) == ["0", "1", "2", "3"]


def test_duplicate_keys_and_bad_options_are_refused():
    with pytest.raises(InvalidParameterError, match="distinct keys"):
        _collect([1, 1], math.factorial, Execution())
    with pytest.raises(InvalidParameterError, match=r"^backend: must be one of 'in-process'"):
        Execution("slurm")
    with pytest.raises(InvalidParameterError, match=r"^workers: must be a positive integer"):
        Execution("pool", workers=0)
    with pytest.raises(InvalidParameterError, match=r"^workers: must be unset for the in-process"):
        Execution(workers=2)
    with pytest.raises(InvalidParameterError, match=r"^scheduler: must be set only with the dask"):
        Execution("pool", scheduler="tcp://x:1")
    with pytest.raises(InvalidParameterError, match=r"^workers: must be unset when joining"):
        Execution("dask", workers=2, scheduler="tcp://x:1")
    assert Execution("DASK").backend is Backend.DASK
    assert Execution("pool").worker_count == os.cpu_count()


def test_signals_raise_interrupted_and_wait_for_a_shielded_block():
    from simulations.execution import Interrupted, interruptible, shielded

    stored = []
    with pytest.raises(Interrupted) as info, interruptible():
        with shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            stored.append("cell")  # a result being stored is stored before the interrupt
        stored.append("never")
    assert stored == ["cell"] and info.value.exit_status == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the old handler is back
    with pytest.raises(Interrupted) as info, interruptible():
        os.kill(os.getpid(), signal.SIGINT)
    assert info.value.exit_status == 130 and str(info.value) == "SIGINT"
    assert isinstance(info.value, KeyboardInterrupt)  # callers that stop on Ctrl-C stop on it
