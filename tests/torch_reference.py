"""PyTorch equivalents of the authors' models (SPEC §1-3), for comparisons only.

Written from the spec: `FourLayerCVAE`, `FeaturePredictorCVAE`,
`FeatureAutoencoder` and `PerceptualFeatureToImgCVAE` of the authors'
implementation, with both latent heads always present.
"""

import torch
from torch import nn


def alexnet_features_torch():
    """torchvision's AlexNet `features[:5]` (keys features.0.*, features.3.*)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
    )


def _feature_size(image_size):
    side = ((image_size + 4 - 11) // 4 + 1 - 3) // 2 + 1
    return 192 * side * side


def _image_encoder():
    layers, channels = [], [3, 32, 64, 128, 256]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 4, 2), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers)


def _image_decoder(z_dim, image_size):
    g = (image_size - 64) // 16 + 1
    return nn.Sequential(
        nn.Linear(z_dim, 1024 * g * g),
        nn.ReLU(),
        nn.Unflatten(1, (1024, g, g)),
        nn.ConvTranspose2d(1024, 128, 5, 2), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 5, 2), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 6, 2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 6, 2), nn.Sigmoid(),
    )


class TorchProcedureModel(nn.Module):
    """The authors' model of one procedure; the frozen loss network is included."""

    def __init__(self, procedure, z_dim, image_size=64):
        super().__init__()
        encoder_kind, decoder_kind, _ = procedure.split("-")
        features = _feature_size(image_size)
        hidden = int(min(features / 2, 2048))
        self.loss_network = alexnet_features_torch()
        for p in self.loss_network.parameters():
            p.requires_grad = False
        if encoder_kind == "I":
            side = image_size
            for _ in range(4):
                side = (side - 4) // 2 + 1
            flat = 256 * side * side
            self.encoder = nn.Sequential(_image_encoder(), nn.Flatten())
        else:
            flat = hidden
            self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.mu = nn.Linear(flat, z_dim)
        self.logvar = nn.Linear(flat, z_dim)
        if decoder_kind == "I":
            self.decoder = _image_decoder(z_dim, image_size)
        else:
            self.decoder = nn.Sequential(
                nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, features)
            )


def trainable_parameters(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_on_meta(procedure, z_dim, image_size):
    """Builds without allocating memory: only the shapes are needed to count."""
    with torch.device("meta"):
        return TorchProcedureModel(procedure, z_dim, image_size)
