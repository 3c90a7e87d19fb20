"""The two-phase semi-supervised adversarial VAE (paper 4: Zemouri, semi-supervised adversarial VAE).

Phase 1 trains a variational encoder and a classifier on z together
(`VariationalEncoderClassifier`); phase 2 freezes both and trains a decoder
against the encoder's own features, a least-squares discriminator and the
classifier (`AdversarialDecoder`). `python -m keras_pae.ssavae` runs both.
"""
