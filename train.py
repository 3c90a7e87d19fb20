#!/usr/bin/env python
"""Train an encoder with one of the six procedures, e.g.

    python train.py --dataset lunarlander --procedure I-F-FP

See `python train.py --help` and the README.
"""

import os
import sys

# Before TensorFlow is imported: quieter logs, and pygame renders off-screen.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from keras_pae.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
