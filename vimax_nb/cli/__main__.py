"""``python -m vimax_nb.cli``: the ``vimax-nb`` command."""

import sys

from . import main

sys.exit(main())
