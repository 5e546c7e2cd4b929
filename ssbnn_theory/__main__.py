"""``python -m ssbnn_theory rate ...``: ``ssbnn rate`` without the simulation package."""

from ssbnn_theory.cli import main

raise SystemExit(main())
