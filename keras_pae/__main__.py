"""`python -m keras_pae COMMAND ...`, the same as the `keras-pae` console script."""

import sys

from keras_pae.commands import main

if __name__ == "__main__":
    sys.exit(main())
