"""Shared test configuration: deterministic hypothesis profile.

Every property test sets its own ``max_examples`` with ``@settings``; the
profile here only makes runs reproducible (``derandomize``) and removes the
per-example deadline, which is a timing assertion and flaky on shared CI cores.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ssbnn",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ssbnn")
