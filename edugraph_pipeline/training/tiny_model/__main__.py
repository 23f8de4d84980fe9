"""``python -m edugraph_pipeline.training.tiny_model OUT [test|train]``: build and pretrain the tiny base into OUT."""

import json
import logging
import sys

from edugraph_pipeline.training.tiny_model.pretraining import build_pretrained_tiny_model

logging.basicConfig(level=logging.INFO)
target = sys.argv[1] if len(sys.argv) > 1 else "out/tiny-base"
print(json.dumps(build_pretrained_tiny_model(target, sys.argv[2] if len(sys.argv) > 2 else "train"), indent=2))
