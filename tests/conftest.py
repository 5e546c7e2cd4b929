"""Shared test configuration: hypothesis profiles.

Every property test sets its own ``max_examples`` with ``@settings``. The default
profile ``ssbnn`` makes runs reproducible (``derandomize``: CI tries the same
examples every time) and removes the per-example deadline, which is a timing
assertion and flaky on shared CI cores. ``python -m pytest tests/theory
--hypothesis-profile=explore`` draws fresh random examples on every run, to keep
attacking the bounds beyond the fixed CI set.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ssbnn",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", settings.get_profile("ssbnn"), derandomize=False)
settings.load_profile("ssbnn")
