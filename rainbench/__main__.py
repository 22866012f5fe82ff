"""``python -m rainbench`` runs the CLI."""

import sys

from rainbench.cli import main

sys.exit(main())
