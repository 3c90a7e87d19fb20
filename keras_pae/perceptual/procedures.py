"""The six encoder-pretraining procedures, parsed from their names in one place."""

import dataclasses

PROCEDURES = ("I-I-PW", "I-I-PS", "F-I-PW", "F-I-PS", "I-F-FP", "F-F-FP")

_KINDS = {"I": "image", "F": "features"}
_LOSSES = {"PW": "pixel", "PS": "perceptual", "FP": "feature_prediction"}


@dataclasses.dataclass(frozen=True)
class Procedure:
    """An (encoder, decoder, loss) triple named Encoder-Decoder-Loss.

    Feature-prediction paper, Section VI: "I" is the image (conv) encoder or
    decoder, "F" the feature (MLP) encoder or decoder working on the loss
    network's features; PW, PS and FP are Eq. 1, 2 and 3.

    Args:
        encoder: `"image"` or `"features"`: what the encoder takes.
        decoder: `"image"` or `"features"`: what the decoder produces.
        loss: `"pixel"`, `"perceptual"` or `"feature_prediction"`.
    """

    encoder: str
    decoder: str
    loss: str

    @classmethod
    def parse(cls, name):
        """Returns the procedure called `name` (e.g. `"I-F-FP"`, any case)."""
        if isinstance(name, cls):
            return name
        canonical = str(name).strip().upper()
        if canonical not in PROCEDURES:
            raise ValueError(
                f"Unknown procedure {name!r}; valid procedures are "
                f"{', '.join(PROCEDURES)}."
            )
        encoder, decoder, loss = canonical.split("-")
        return cls(_KINDS[encoder], _KINDS[decoder], _LOSSES[loss])

    @property
    def name(self):
        inverse_kinds = {v: k for k, v in _KINDS.items()}
        inverse_losses = {v: k for k, v in _LOSSES.items()}
        return "-".join(
            (
                inverse_kinds[self.encoder],
                inverse_kinds[self.decoder],
                inverse_losses[self.loss],
            )
        )

    @property
    def needs_loss_network(self):
        """Whether training runs the loss network (all but I-I-PW)."""
        return self.encoder == "features" or self.loss != "pixel"

    @property
    def needs_images_given_features(self):
        """Whether training still reads pixels once p(X) is known (cached).

        The image encoder reads them, and so does PW; F-I-PS and F-F-FP only
        need p(X) (F-I-PS's decoded images go through p, not the pixels).
        """
        return self.encoder == "image" or self.loss == "pixel"

    def __str__(self):
        return self.name


def check_image_size(height, width):
    """Raises a ValueError unless both sides are 64 + 16n (n >= 0).

    The conv encoder and decoder (feature-prediction paper, Sec. V) only fit these sizes.
    """
    for side in (height, width):
        if side < 64 or (side - 64) % 16:
            raise ValueError(
                f"Image size {height}x{width} is not supported by the conv "
                "autoencoders: each side must be 64 + 16n (64, 80, 96, 112, ...)."
            )
