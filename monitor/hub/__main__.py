"""`python -m monitor.hub [hub options]` runs the hub; `python -m monitor.hub console ...`."""
import sys

from .cli import main

sys.exit(main())
