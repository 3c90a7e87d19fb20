"""PyTorch equivalents of the authors' models (feature-prediction paper, Sec. IV-V), for comparisons only.

Modelled on `FourLayerCVAE`, `FeaturePredictorCVAE`, `FeatureAutoencoder` and
`PerceptualFeatureToImgCVAE` of the authors' implementation, with both latent
heads always present. The tests count their parameters and check the loss
network against them; `bench/throughput.py` trains them with a plain Adam loop,
as the authors' code does, and `bench/twin.py` side by side with the Keras models.
"""

import torch
import torch.nn.functional as F
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
    """The authors' model of one procedure; the frozen loss network is included.

    Args:
        procedure: a procedure name such as `"I-F-FP"`.
        z_dim: size of the latent space.
        image_size: side of the square images (64 + 16n).
    """

    def __init__(self, procedure, z_dim, image_size=64):
        super().__init__()
        self.encoder_kind, self.decoder_kind, self.loss_kind = procedure.split("-")
        features = _feature_size(image_size)
        hidden = int(min(features / 2, 2048))
        self.loss_network = alexnet_features_torch()
        for p in self.loss_network.parameters():
            p.requires_grad = False
        if self.encoder_kind == "I":
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
        if self.decoder_kind == "I":
            self.decoder = _image_decoder(z_dim, image_size)
        else:
            self.decoder = nn.Sequential(
                nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, features)
            )

    def features(self, images):
        """p(images): sigmoid of the loss network, flattened (torch C, H, W order)."""
        return torch.sigmoid(self.loss_network(images)).flatten(1)

    def encode(self, images, features=None):
        """`(mu, logvar)` of an NCHW batch (of its features `p(images)` for an F-* encoder)."""
        if self.encoder_kind == "F" and features is None:
            with torch.no_grad():
                features = self.features(images)
        hidden = self.encoder(images if self.encoder_kind == "I" else features)
        return self.mu(hidden), self.logvar(hidden)

    def losses(self, images, gamma=0.0, noise=None, features=None):
        """`(total, reconstruction, kl)` of an NCHW batch, total = reconstruction + gamma * KL.

        Args:
            images: the NCHW batch in [0, 1].
            gamma: KL weight; 0 is the plain autoencoder (z = mu, logvar unused).
            noise: epsilon of z = mu + epsilon * exp(logvar / 2); None draws it.
            features: p(images) when already known; computed otherwise.
        """
        target = features
        if target is None and (self.encoder_kind == "F" or self.loss_kind != "PW"):
            with torch.no_grad():
                target = self.features(images)
        hidden = self.encoder(images if self.encoder_kind == "I" else target)
        mu = self.mu(hidden)
        z, kl = mu, torch.zeros(())
        if gamma > 0:
            # The KL averaged over batch and latent dimensions, as the authors do.
            logvar = self.logvar(hidden)
            if noise is None:
                noise = torch.randn_like(mu)
            z = mu + noise * torch.exp(0.5 * logvar)
            kl = -torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        decoded = self.decoder(z)
        if self.loss_kind == "PW":
            reconstruction = F.mse_loss(decoded, images)
        elif self.loss_kind == "PS":
            reconstruction = F.mse_loss(self.features(decoded), target)
        else:
            reconstruction = F.mse_loss(decoded, target)
        return reconstruction + gamma * kl, reconstruction, kl

    def loss(self, images):
        """The plain autoencoder's (gamma 0) reconstruction loss of an NCHW batch."""
        return self.losses(images)[0]


def trainable_parameters(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_on_meta(procedure, z_dim, image_size):
    """Builds without allocating memory: only the shapes are needed to count."""
    with torch.device("meta"):
        return TorchProcedureModel(procedure, z_dim, image_size)
