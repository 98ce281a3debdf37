"""``python -m flowmapsr ...``: the ``flowmapsr`` command, for environments without its script
(a checkout on ``PYTHONPATH``, a subprocess that must use this interpreter)."""

import sys

from flowmapsr.cli.main import main

sys.exit(main())
