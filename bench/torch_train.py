"""`train.py`'s run with the PyTorch equivalent taking the training steps.

    python bench/torch_train.py [train.py's flags] --out DIR

Everything but the steps is `train`'s own:
- the collection and the validation split;
- the batches, in the same order (`pipeline.image_dataset`, shuffled with the run's seed);
- the initial weights (the Keras model `train` builds, copied into `bench/torch_models.py`'s);
- the epoch kept (the lowest validation loss, in inference mode, with `train`'s patience);
- the predictors (the kept epoch's weights are copied back into the Keras model, whose encoder
  `evaluate_predictors` reads in inference mode, as after `train`).

So against `train.py` with the same flags and `--feature-cache off`, the one difference is the
arithmetic of the steps: PyTorch's kernels and `torch.optim.Adam` against Keras's. The run
writes `DIR/summary.json` (validation losses, the epoch kept, seconds per epoch, the
predictors' result) and prints the test metric.
"""

import copy
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.torch_models import TorchProcedureModel  # noqa: E402
from bench.twin import copy_keras_to_torch, copy_torch_to_keras, to_torch_images  # noqa: E402
from keras_pae.core.devices import set_seeds  # noqa: E402
from keras_pae.data import pipeline, registry  # noqa: E402
from keras_pae.perceptual.cli import build_parser, config_from_args  # noqa: E402
from keras_pae.perceptual.evaluate import evaluate_predictors, format_metric  # noqa: E402
from keras_pae.perceptual.training import PREDICTORS_FILE, _build_model  # noqa: E402


def validation_loss(torch_model, dataset, gamma):
    """The mean of the batches' losses in inference mode, as Keras's `val_loss`."""
    torch_model.eval()
    losses = []
    with torch.no_grad():
        for images in dataset:
            losses.append(torch_model.losses(to_torch_images(images.numpy()), gamma)[0].item())
    torch_model.train()
    return float(np.mean(losses))


def train_torch(config, out, verbose=True):
    """Trains `config`'s run with PyTorch steps (see the module docstring); returns its summary."""
    set_seeds(config.seed, config.deterministic)
    torch.manual_seed(config.seed)
    model = _build_model(config, config.loss_weights)
    torch_model = TorchProcedureModel(config.procedure, config.z_dim, config.image_size)
    copy_keras_to_torch(model, torch_model)
    torch_model.train()

    data = registry.autoencoder_data(config, progress=verbose)
    split = pipeline.validation_split(len(data.images), data.groups, config.validation_fraction)
    inputs = dict(image_size=config.image_size, fit=registry.info(config.dataset).fit)
    train_data = pipeline.image_dataset(data.images[:split], config.batch_size, shuffle=True, seed=config.seed, **inputs)
    validation_data = pipeline.image_dataset(data.images[split:], config.batch_size, **inputs)
    optimizer = torch.optim.Adam([p for p in torch_model.parameters() if p.requires_grad], lr=config.learning_rate)

    history, best, best_state = [], None, None
    for epoch in range(config.epochs):
        start, losses = time.perf_counter(), []
        for images in train_data:
            optimizer.zero_grad(set_to_none=True)
            loss = torch_model.losses(to_torch_images(images.numpy()), config.gamma)[0]
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        seconds = time.perf_counter() - start
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "val_loss": validation_loss(torch_model, validation_data, config.gamma),
            "train_seconds": seconds,
        }
        history.append(row)
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.6g}, val_loss {row['val_loss']:.6g}, {seconds:.0f} s", flush=True)
        if best is None or row["val_loss"] < history[best]["val_loss"]:
            best, best_state = epoch, copy.deepcopy(torch_model.state_dict())
        elif epoch - best >= config.early_stopping_patience:
            break

    torch_model.load_state_dict(best_state)
    copy_torch_to_keras(torch_model, model)
    os.makedirs(out, exist_ok=True)
    predictors = None
    if config.predictor_epochs:
        predictors = evaluate_predictors(model, config, os.path.join(out, PREDICTORS_FILE), verbose=1 if verbose else 0)
    summary = {
        "trainer": "pytorch",
        "torch": torch.__version__,
        "procedure": config.procedure,
        "best_epoch": best + 1,
        "best_val_loss": history[best]["val_loss"],
        "history": history,
        "predictors": predictors,
        "config": config.to_dict(),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if verbose:
        print(f"{config.procedure} (PyTorch steps): best val loss {summary['best_val_loss']:.6g} at epoch {best + 1}; wrote {out}")
        if predictors:
            print(f"{config.procedure} (PyTorch steps): {format_metric(predictors)} with predictor {predictors['chosen']}")
    return summary


def main(argv=None):
    parser = build_parser("bench/torch_train.py")
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("give --out DIR.")
    train_torch(config_from_args(args).validate(), args.out)


if __name__ == "__main__":
    main()
