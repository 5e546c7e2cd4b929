"""``python -m paper_figures``."""

from paper_figures.cli import main

raise SystemExit(main())
