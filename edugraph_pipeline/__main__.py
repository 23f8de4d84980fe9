import sys

from edugraph_pipeline.cli import main

sys.exit(main())
