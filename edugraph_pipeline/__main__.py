"""`python -m edugraph_pipeline`: the `edugraph` command line."""

import sys

from edugraph_pipeline.cli import main

sys.exit(main())
