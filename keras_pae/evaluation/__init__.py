"""Embedding evaluation: small predictors trained on frozen embeddings (SPEC §5)."""
