"""``python -m fasthw6``: the same command line as the ``fasthw6`` script."""
import sys

from .cli import main

sys.exit(main())
