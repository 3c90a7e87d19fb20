"""Data sets for pretraining and probing encoders; `python -m keras_pae.data --help` lists them.

Submodules are imported explicitly (e.g. `keras_pae.data.lunarlander`) so that
importing this package, which spawned data workers do, stays free of TensorFlow.
"""
