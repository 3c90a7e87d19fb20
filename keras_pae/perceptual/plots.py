"""Figures of papers 1-2 that need their data: test images as the models see them."""

import numpy as np

from keras_pae.data import pipeline, registry


def test_images(config, count=8):
    """`count` test images of `config.dataset`, evenly spread, as the models see them."""
    test = registry.test_data(config, progress=False)
    picks = np.linspace(0, len(test) - 1, count).astype(int)
    fit = registry.info(config.dataset).fit
    dataset = pipeline.image_dataset(test.images[picks], count, image_size=config.image_size, fit=fit)
    return np.concatenate([np.asarray(batch) for batch in dataset])
