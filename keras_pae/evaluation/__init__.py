"""Embedding evaluation: small predictors trained on frozen embeddings (feature-prediction paper, Sec. VI; perceptual-loss paper, Sec. VI)."""
