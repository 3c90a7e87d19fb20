"""The seven predictor MLPs of the feature-prediction paper and their selection.

Feature-prediction paper, Section VI: for every autoencoder, MLPs
with hidden layers [], [32], [64], [32, 32], [64, 32], [64, 64], [128, 128]
(LeakyReLU, linear output) are trained on the embeddings (mu) with MSE
against the position or the one-hot class, Adam, batch 512, up to 500 epochs,
early stopping with patience max(10, epochs / 20) keeping the best-validation
weights; the MLP with the lowest validation loss is tested. The seven train
together as one model (`PredictorBank`), each with its own early stopping.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_pae.core import optimizers
from keras_pae.core.progress import EpochProgress
from keras_pae.data import lunarlander, pipeline

HIDDEN_LAYERS = ((), (32,), (64,), (32, 32), (64, 32), (64, 64), (128, 128))

# The most training steps per call (see `steps_per_execution`): the MLPs are
# tiny, so per-call overhead dominates a step.
STEPS_PER_EXECUTION = 32


def predictor_mlp(input_dim, hidden, num_outputs, seed=None):
    """A predictor MLP: LeakyReLU hidden layers and a linear output.

    Args:
        input_dim: embedding size (z).
        hidden: sizes of the hidden layers; `()` is a linear model.
        num_outputs: 2 for positions, the number of classes otherwise.
        seed: seed of the weight initialisation.
    """
    inputs = keras.Input((input_dim,), name="embedding")
    x = inputs
    for i, units in enumerate(hidden):
        init = keras.initializers.GlorotUniform(seed=None if seed is None else seed + i)
        x = keras.layers.Dense(units, kernel_initializer=init, name=f"hidden{i}")(x)
        x = keras.layers.LeakyReLU(name=f"leaky_relu{i}")(x)
    init = keras.initializers.GlorotUniform(seed=None if seed is None else seed + len(hidden))
    outputs = keras.layers.Dense(num_outputs, kernel_initializer=init, name="output")(x)
    name = "mlp_" + ("x".join(map(str, hidden)) or "linear")
    return keras.Model(inputs, outputs, name=name)


def targets(labels, label_kind, num_outputs):
    """Regression targets: positions and 0/1 attributes as they are, classes one-hot (the authors' MSE)."""
    if label_kind == "class":
        return keras.utils.to_categorical(labels, num_outputs).astype(np.float32)
    return np.asarray(labels, np.float32)


def position_error_pixels(predicted, positions, pixels_per_unit=lunarlander.PIXELS_PER_UNIT):
    """Mean Euclidean distance in pixels of the 64x64 image (feature-prediction paper, Sec. VI).

    Rows of 2k coordinates are k (x, y) points (CelebA's 5 landmarks); the
    mean is over every point.

    Args:
        predicted, positions: arrays (N, 2k).
        pixels_per_unit: pixels per coordinate unit (LunarLander: 32).
    """
    difference = np.asarray(predicted, np.float64) - np.asarray(positions, np.float64)
    distance = np.linalg.norm(difference.reshape(len(difference), -1, 2), axis=-1)
    return float(pixels_per_unit * distance.mean())


def accuracy(predicted, labels):
    """Share of rows whose largest output is the label."""
    return float(np.mean(np.argmax(predicted, axis=-1) == np.asarray(labels)))


def attribute_accuracy(predicted, attributes):
    """Share of (example, attribute) pairs where the output is on the label's side of 0.5."""
    return float(np.mean((np.asarray(predicted) > 0.5) == (np.asarray(attributes) > 0.5)))


def test_metric(label_kind):
    """(name, lower_is_better) of the test metric for a label kind."""
    return {
        "position": ("pixel_error", True),
        "attributes": ("attribute_accuracy", False),
    }.get(label_kind, ("accuracy", False))


def score(predicted, labels, label_kind, pixels_per_unit=lunarlander.PIXELS_PER_UNIT):
    """The test metric of `test_metric(label_kind)` for predictions."""
    if label_kind == "position":
        return position_error_pixels(predicted, labels, pixels_per_unit)
    if label_kind == "attributes":
        return attribute_accuracy(predicted, labels)
    return accuracy(predicted, labels)


def baseline_score(train_labels, test_labels, label_kind, num_outputs, pixels_per_unit=lunarlander.PIXELS_PER_UNIT):
    """The test metric of a prediction that ignores the embedding.

    Every test example gets the mean training target: the mean position, the
    most frequent class, each attribute's more frequent value. An embedding is
    only useful if its predictor beats this.

    Args:
        train_labels, test_labels: label arrays as `evaluate_embeddings` takes them.
        label_kind, num_outputs, pixels_per_unit: as for `evaluate_embeddings`.
    """
    mean = targets(train_labels, label_kind, num_outputs).mean(axis=0)
    predicted = np.broadcast_to(mean, (len(test_labels), *mean.shape))
    return score(predicted, test_labels, label_kind, pixels_per_unit)


def batches_per_epoch(num_examples, batch_size):
    """Batches in one pass over `num_examples`, the last one possibly smaller."""
    return -(-num_examples // batch_size)


def training_batches(x, y, batch_size, seed):
    """Batches of `(x, y)`, reshuffled every epoch (seeded), epoch after epoch without end.

    Each epoch is the whole data once, its last batch smaller: fit with
    `steps_per_epoch=batches_per_epoch(len(x), batch_size)`. One iterator
    then serves every epoch; `fit` on arrays made two per epoch, which with the
    validation's took about half of a run's predictor phase.

    Args:
        x, y: arrays, or `y` a tuple of arrays (one target per model).
        batch_size: examples per batch.
        seed: seed of the shuffles.
    """
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return pipeline.finish(dataset.batch(batch_size).repeat())


def steps_per_execution(steps_per_epoch):
    """The most steps per call, up to `STEPS_PER_EXECUTION`, that divide an epoch.

    A call runs all its steps, so calls that straddle epochs would move
    batches from one epoch to the next.
    """
    return max(d for d in range(1, STEPS_PER_EXECUTION + 1) if steps_per_epoch % d == 0)


# Banks this process has compiled, by shape: tracing a bank's train step takes
# about a third of a run's predictor phase, and a grid evaluates every run's
# embeddings with the same bank.
_banks = {}


def _fresh_bank(input_dim, hidden_layers, num_outputs, learning_rate, seed, steps):
    """A compiled `PredictorBank` of new MLPs initialised from `seed`, `steps` steps per call.

    A bank of the same shape compiled earlier in this process is reused, its
    traced steps with it: it takes the new MLPs' initial weights and its
    optimizer's state from before its first step, so it trains exactly as a
    new bank would.
    """
    models = [predictor_mlp(input_dim, hidden, num_outputs, seed=seed) for hidden in hidden_layers]
    key = (input_dim, tuple(tuple(hidden) for hidden in hidden_layers), num_outputs, learning_rate, steps)
    if key not in _banks:
        # All the MLPs trained as one model (see `PredictorBank`), several
        # steps per call: the same batches in the same order, less overhead.
        bank = PredictorBank(models)
        bank.compile(optimizer=optimizers.FusedAdam(learning_rate), steps_per_execution=steps)
        bank.optimizer.build(bank.trainable_variables)
        _banks[key] = bank, [keras.ops.convert_to_numpy(v) for v in bank.optimizer.variables]
        return bank
    bank, optimizer_start = _banks[key]
    for kept, new in zip(bank.predictors, models):
        kept.set_weights(new.get_weights())
    for variable, value in zip(bank.optimizer.variables, optimizer_start):
        variable.assign(value)
    return bank


class PredictorBank(keras.Model):
    """Several predictor MLPs trained as one model on the same batches.

    The loss is the sum of each MLP's MSE, so each MLP gets the gradient of
    its own loss and (Adam being per-weight) the updates it would get trained
    alone on the same batches. One step trains all seven: the MLPs are tiny
    and per-step overhead dominated.

    Each MLP's loss is logged as `<name>_loss` (`val_<name>_loss`), averaged
    over examples as Keras averages a single model's loss. (Keras's own
    per-output losses average over batches, which weighs a smaller last
    batch too much.)

    Args:
        models: the MLPs; targets and outputs are lists in the same order.
    """

    def __init__(self, models, **kwargs):
        super().__init__(name="predictors", **kwargs)
        self.predictors = list(models)
        self.mse = keras.losses.MeanSquaredError()
        self.losses_each = [keras.metrics.Mean(name=f"{model.name}_loss") for model in self.predictors]

    def call(self, inputs):
        return [model(inputs) for model in self.predictors]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        values = []
        for tracker, target, predicted in zip(self.losses_each, y, y_pred):
            value = self.mse(target, predicted)
            tracker.update_state(value, sample_weight=keras.ops.shape(x)[0])
            values.append(value)
        return sum(values)

    def validation_losses(self, x, y):
        """Each MLP's MSE on all of `x`, as `test_on_batch` logs it (one batch), as floats.

        One compiled call, traced once per bank: `test_on_batch` also resets
        and reads every metric, twice the cost at each of the hundreds of
        epochs a grid's predictors run.
        """
        if getattr(self, "_validation_function", None) is None:
            self._validation_function = tf.function(
                lambda x, y: [self.mse(target, model(x, training=False)) for target, model in zip(y, self.predictors)]
            )
        return [float(value) for value in self._validation_function(x, y)]

    def weights_snapshot(self):
        """Every MLP's weights as tensors, copied in one compiled call (`get_weights` reads them one by one)."""
        if getattr(self, "_snapshot_function", None) is None:
            self._snapshot_function = tf.function(
                lambda: [[tf.identity(weight.value) for weight in model.weights] for model in self.predictors]
            )
        return self._snapshot_function()


class ValidationLosses(keras.callbacks.Callback):
    """Adds the model's validation losses (`val_<name>_loss`) to every epoch's logs.

    The values `fit(validation_data=...)` logs, example-weighted means, but
    from one batch of the whole validation data: `fit` made two `tf.data`
    iterators per epoch for it.

    Args:
        x, y: the validation data, small enough for one batch.
    """

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = tf.convert_to_tensor(x), [tf.convert_to_tensor(target) for target in y]

    def on_epoch_end(self, epoch, logs=None):
        losses = self.model.validation_losses(self.x, self.y)
        logs.update({f"val_{model.name}_loss": value for model, value in zip(self.model.predictors, losses)})
        logs["val_loss"] = sum(losses)


class EarlyStoppingEach(keras.callbacks.Callback):
    """`keras.callbacks.EarlyStopping(restore_best_weights=True)` for each of several models trained as one.

    Every model is watched on its own validation loss (the logged
    `val_<name>_loss`) with Keras's rule: it stops once `patience` epochs in a
    row bring no new minimum, and ends with its best epoch's weights. Its
    validation losses are kept up to the epoch it stopped, so they are the
    history it would have had trained alone. Training ends when every model
    has stopped.

    Args:
        models: the MLPs of the `PredictorBank` being trained (their best
            weights are copied with its `weights_snapshot`).
        patience: epochs without improvement before a model stops.
    """

    def __init__(self, models, patience):
        super().__init__()
        self.models = list(models)
        self.patience = patience

    def on_train_begin(self, logs=None):
        self.val_losses = [[] for _ in self.models]
        self.stopped = [False] * len(self.models)
        self.best = [None] * len(self.models)
        self.best_weights = [None] * len(self.models)
        self.wait = [0] * len(self.models)

    def on_epoch_end(self, epoch, logs=None):
        snapshot = None
        for i, model in enumerate(self.models):
            if self.stopped[i]:
                continue
            current = float(logs[f"val_{model.name}_loss"])
            self.val_losses[i].append(current)
            self.wait[i] += 1
            if self.best[i] is None or current < self.best[i]:
                if snapshot is None:
                    snapshot = self.model.weights_snapshot()
                self.best[i], self.best_weights[i], self.wait[i] = current, snapshot[i], 0
            elif self.wait[i] >= self.patience and epoch > 0:
                self.stopped[i] = True
        if all(self.stopped):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for model, weights in zip(self.models, self.best_weights):
            if weights is not None:
                model.set_weights(weights)


def evaluate_embeddings(
    train,
    validation,
    test,
    label_kind,
    num_outputs,
    hidden_layers=HIDDEN_LAYERS,
    epochs=500,
    batch_size=512,
    learning_rate=1e-3,
    seed=0,
    verbose=0,
    pixels_per_unit=lunarlander.PIXELS_PER_UNIT,
    progress=False,
):
    """Trains every predictor, picks the lowest validation loss, tests it.

    Args:
        train, validation, test: `(embeddings, labels)` pairs.
        label_kind: `"position"`, `"class"` or `"attributes"` (k binary
            labels, regressed with MSE like the one-hot classes).
        num_outputs: coordinates, classes or attributes.
        hidden_layers: distinct architectures to try.
        epochs: maximum epochs per predictor.
        batch_size: examples per step.
        learning_rate: Adam's learning rate.
        seed: seeds initialisation and shuffling.
        verbose: `fit`'s verbosity.
        pixels_per_unit: scale of the pixel error for positions.
        progress: show the epochs' progress (a bar, or a line every tenth)
            with `verbose=0`.

    Returns:
        A dict: every predictor's best validation loss and epochs, the chosen
        one, its test metric, and the metric of `baseline_score`.
    """
    if len({tuple(hidden) for hidden in hidden_layers}) != len(hidden_layers):
        raise ValueError(f"hidden_layers must be distinct architectures; got {list(hidden_layers)}.")
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = train, validation, test
    fit_y = targets(train_y, label_kind, num_outputs)
    fit_val = targets(val_y, label_kind, num_outputs)
    keras.utils.set_random_seed(seed)
    steps = batches_per_epoch(len(train_x), batch_size)
    bank = _fresh_bank(train_x.shape[-1], hidden_layers, num_outputs, learning_rate, seed, steps_per_execution(steps))
    models = bank.predictors
    stopper = EarlyStoppingEach(models, patience=max(10, epochs // 20))
    callbacks = [ValidationLosses(val_x, [fit_val] * len(models)), stopper]
    if progress:
        callbacks.append(EpochProgress(epochs, f"{len(models)} predictors, epochs"))
    bank.fit(
        training_batches(train_x, tuple([fit_y] * len(models)), batch_size, seed),
        steps_per_epoch=steps, epochs=epochs, shuffle=False, callbacks=callbacks, verbose=verbose,
    )
    results = []
    for hidden, val_losses in zip(hidden_layers, stopper.val_losses):
        results.append(
            {
                "hidden": list(hidden),
                "val_loss": float(np.min(val_losses)),
                "best_epoch": int(np.argmin(val_losses)) + 1,
                "epochs_run": len(val_losses),
            }
        )
    chosen = int(np.argmin([r["val_loss"] for r in results]))
    predicted = models[chosen].predict(pipeline.array_batches(test_x, 4096), verbose=0)
    name, lower_is_better = test_metric(label_kind)
    value = score(predicted, test_y, label_kind, pixels_per_unit)
    return {
        "predictors": results,
        "chosen": results[chosen]["hidden"],
        "test_metric": name,
        "lower_is_better": lower_is_better,
        "test_value": value,
        "baseline_value": baseline_score(train_y, test_y, label_kind, num_outputs, pixels_per_unit),
        "train_examples": len(train_x),
        "validation_examples": len(val_x),
        "test_examples": len(test_x),
    }
