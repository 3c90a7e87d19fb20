"""The first paper's predictor search space as a KerasTuner `HyperModel`.

Perceptual-loss paper, Section VI: on the embeddings, 1 or 2 hidden
layers of 32, 64 or 128 units, ReLU or Sigmoid, a linear or softmax output,
the second layer never larger than the first; plus linear regressors (no
hidden layer). Trained with MSE against the position or the one-hot class,
as the authors' implementation does.
"""

import keras
import keras_tuner

UNITS = (32, 64, 128)
ACTIVATIONS = ("relu", "sigmoid")


def second_layer_name(first_units):
    """The hyperparameter holding the second layer's units under a first layer of `first_units`.

    One name per first-layer size, each offering only sizes not larger than
    it, so no point of the space breaks the paper's rule.
    """
    return f"units_2_when_units_1_{first_units}"


class PredictorHyperModel(keras_tuner.HyperModel):
    """MLPs on fixed embeddings: the first paper's search space.

    Args:
        input_dim: embedding size (z).
        num_outputs: 2 for positions, the number of classes otherwise.
        label_kind: `"class"` (linear or softmax output), `"position"` or
            `"attributes"` (linear output).
        batch_size: examples per step (the papers: 512).
        patience: early-stopping patience in epochs; the best-validation
            weights are kept.
    """

    def __init__(self, input_dim, num_outputs, label_kind, batch_size=512, patience=10, **kwargs):
        super().__init__(**kwargs)
        if label_kind not in ("position", "class", "attributes"):
            raise ValueError(f"label_kind must be 'position', 'class' or 'attributes'; got {label_kind!r}.")
        self.input_dim = input_dim
        self.num_outputs = num_outputs
        self.label_kind = label_kind
        self.batch_size = batch_size
        self.patience = patience

    def build(self, hp):
        layers = hp.Choice("hidden_layers", [0, 1, 2], default=1)
        # Inactive (conditional) hyperparameters return None. KerasTuner
        # matches a parent by its exact conditions, hence separate names for
        # the one- and two-layer widths.
        with hp.conditional_scope("hidden_layers", [1]):
            only = hp.Choice("units", list(UNITS), default=64)
        with hp.conditional_scope("hidden_layers", [2]):
            first = hp.Choice("units_1", list(UNITS), default=64)
            # One second-layer hyperparameter per first-layer width keeps the
            # rule "second layer not larger than the first" inside the space.
            second = {}
            for size in UNITS:
                with hp.conditional_scope("units_1", [size]):
                    allowed = [u for u in UNITS if u <= size]
                    second[size] = hp.Choice(second_layer_name(size), allowed, default=allowed[-1])
        with hp.conditional_scope("hidden_layers", [1, 2]):
            activation = hp.Choice("activation", list(ACTIVATIONS), default="relu")
        units = {0: [], 1: [only], 2: [first, second.get(first)]}[layers]
        outputs = ["linear", "softmax"] if self.label_kind == "class" else ["linear"]
        output_activation = hp.Choice("output", outputs, default="linear")

        inputs = keras.Input((self.input_dim,), name="embedding")
        x = inputs
        for i, size in enumerate(units):
            x = keras.layers.Dense(size, activation=activation, name=f"hidden{i}")(x)
        outputs = keras.layers.Dense(self.num_outputs, activation=output_activation, name="output")(x)
        model = keras.Model(inputs, outputs, name="mlp_" + ("x".join(map(str, units)) or "linear"))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        return model

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        return model.fit(
            *args, batch_size=self.batch_size, callbacks=[*(callbacks or []), stopper], **kwargs
        )
