"""Perceptual / feature-prediction autoencoders (papers 1 and 2)."""
