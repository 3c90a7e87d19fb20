"""The convolutional-autoencoder bottleneck study (SPEC §8).

`python -m keras_pae.bottleneck --help` runs it; the model, SVCCA and the
transfer probes are importable on their own.
"""
