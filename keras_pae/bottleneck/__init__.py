"""The convolutional-autoencoder bottleneck study (bottleneck paper).

`python -m keras_pae.bottleneck --help` runs it; the model, SVCCA and the
transfer probes are importable on their own.
"""
