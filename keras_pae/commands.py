"""`keras-pae`: one console script, a subcommand per command.

Each subcommand is a module with `main(argv, prog)`, which runs behind the
boundary of `keras_pae.core.cli`. Only the chosen module is imported, so
`keras-pae --help` and a mistyped subcommand answer at once.
"""

import importlib
import sys

# name -> (module, one-line summary)
COMMANDS = {
    "train": ("keras_pae.perceptual.cli", "train an encoder with one of the six procedures (as train.py)"),
    "experiment": ("keras_pae.perceptual.experiment", "the grid of procedures x z x gamma x repetitions, resumable"),
    "report": ("keras_pae.perceptual.report", "compare finished training runs in one table"),
    "retrain-decoder": ("keras_pae.perceptual.retrain_decoder", "retrain decoders on frozen embeddings, compare L1"),
    "pretrain-loss-network": ("keras_pae.perceptual.pretrain_loss_network", "train the loss network's AlexNet layers"),
    "convert-alexnet": ("keras_pae.perceptual.convert_alexnet", "convert a torchvision AlexNet .pth into loss-network weights"),
    "search": ("tuning.search", "KerasTuner search of the predictors on a run's embeddings"),
    "bottleneck": ("keras_pae.bottleneck.__main__", "the convolutional-autoencoder bottleneck study"),
    "ssavae": ("keras_pae.ssavae.__main__", "the two-phase semi-supervised adversarial VAE"),
    "data": ("keras_pae.data.__main__", "generate, load or describe a dataset"),
}
PROG = "keras-pae"


def usage():
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} COMMAND [options]   ({PROG} COMMAND --help for a command's options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    """Runs `keras-pae COMMAND ...`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{PROG}: error: unknown command {name!r}; valid commands are {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest, prog=f"{PROG} {name}")
