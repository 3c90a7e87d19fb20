#!/usr/bin/env python
"""Train an encoder with one of the six procedures, e.g.

    python train.py --dataset lunarlander --procedure I-F-FP

The same command as `keras-pae train`; see `python train.py --help` and docs/perceptual.md.
"""

import sys

from keras_pae.perceptual.cli import main

if __name__ == "__main__":
    sys.exit(main())
