"""The command line: ``dlfp train mlp``, ``dlfp train numpy-cnn``, ``dlfp evaluate``.

``dlfp train mlp`` trains the book's MNIST network (:mod:`dlfp.recipes`) and ``dlfp
train numpy-cnn`` the convolutional network of Part III in NumPy alone
(:mod:`dlfp.cnn`), each with a progress bar; both print the test accuracy and save the
model. ``dlfp evaluate FILE`` reports the accuracy and confusion matrix of either kind
of saved model on the MNIST test set. Errors a user can fix (missing data, a file that
is not a model, an option that cannot work) are printed as one sentence, with exit
status 2 and no traceback; options are checked before any training starts, so a
mistake never costs a finished run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .data import DataError, load_mnist
from .io import ModelFileError, load
from .metrics import confusion_matrix
from .recipes import CNNConfig, MLPConfig, Recipe
from .report import Table
from .train import TrainingDivergedError

__all__ = ["main"]


def _positive_ints(what: str):
    """An argparse type: integers separated by commas, each positive (``what`` names
    them in the error)."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(w) for w in text.split(",") if w.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} are integers separated by commas (512,256), not {text!r}"
            ) from None
        if not values or any(w <= 0 for w in values):
            raise argparse.ArgumentTypeError(f"{what} must be positive; got {text!r}")
        return values

    return parse


def _parser() -> argparse.ArgumentParser:
    defaults = MLPConfig()
    parser = argparse.ArgumentParser(
        prog="dlfp",
        description="Deep Learning, From First Principles: train and evaluate.",
    )
    parser.add_argument(
        "--data-dir",
        help="folder holding the four MNIST files (default: $DLFP_DATA_DIR or a cache)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on MNIST")
    kinds = train.add_subparsers(dest="model", required=True, metavar="{mlp,numpy-cnn}")
    mlp_defaults, cnn_defaults = MLPConfig(), CNNConfig()
    for kind, defaults, text in (
        ("mlp", mlp_defaults, "the book's multilayer perceptron (Part II)"),
        ("numpy-cnn", cnn_defaults, "the book's CNN, in NumPy alone (Part III)"),
    ):
        sub = kinds.add_parser(
            kind, help=text, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        if kind == "mlp":
            sub.add_argument(
                "--hidden",
                type=_positive_ints("hidden widths"),
                default=defaults.hidden,
                help="hidden widths, comma-separated",
            )
        else:
            sub.add_argument(
                "--channels",
                type=_positive_ints("channel counts"),
                default=defaults.channels,
                help="filters of each convolution block, comma-separated",
            )
            sub.add_argument(
                "--hidden", type=int, default=defaults.hidden, help="dense units"
            )
        rate = "Adam's" if kind == "mlp" else "AdamW's"
        options = [
            ("--epochs", int, defaults.epochs, "passes over the training images"),
            ("--lr", float, defaults.lr, f"{rate} peak learning rate"),
            ("--batch-size", int, defaults.batch_size, "images per step"),
            ("--dropout", float, defaults.dropout, "dropout rate"),
            (
                "--max-shift",
                int,
                defaults.max_shift,
                "random shifts of up to this many pixels",
            ),
            (
                "--seed",
                int,
                defaults.seed,
                "seed of the generator behind every random draw",
            ),
            ("--subset", int, None, "train on this many images only (a quick try)"),
        ]
        for flag, type_, default, help_ in options:
            sub.add_argument(flag, type=type_, default=default, help=help_)
        sub.add_argument(
            "--output", "-o", default=f"{kind}.npz", help="where to save the model"
        )
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on MNIST")
    evaluate.add_argument("file", help="a model saved by 'dlfp train'")
    return parser


def _check_train_args(args) -> None:
    """Refuse, before any data is read or any step is trained, what would fail later.

    Raises ``ValueError`` with one sentence naming the option and what to do.
    """
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise ValueError(f"{flag} must be 1 or more, got {value}.")
    if args.subset is not None and not MIN_SUBSET <= args.subset <= 60000:
        raise ValueError(
            f"--subset must be between {MIN_SUBSET} (enough to leave a tenth for "
            f"validation) and 60000, the training images, got {args.subset}."
        )
    if not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout must be in [0, 1), got {args.dropout}.")
    if not math.isfinite(args.lr) or args.lr <= 0:
        raise ValueError(f"--lr must be a positive finite number, got {args.lr}.")
    if args.max_shift < 0:
        raise ValueError(f"--max-shift must be 0 or more, got {args.max_shift}.")
    folder = Path(args.output).expanduser().resolve().parent
    if not folder.is_dir():
        raise ValueError(
            f"the folder {folder} for --output does not exist; create it first or "
            "choose another path, so the trained model is not lost."
        )
    if not os.access(folder, os.W_OK):
        raise ValueError(
            f"the folder {folder} for --output is not writable; choose another path, "
            "so the trained model is not lost."
        )


#: The smallest --subset that leaves a validation split (a tenth, at least one image).
MIN_SUBSET = 10


def _validation_size(default: int, subset: int | None) -> int:
    """The validation split: the recipe's, or a tenth of a ``--subset``."""
    return min(default, (subset or 60000) // 10)


#: The options of ``dlfp train`` that both recipes take, under their fields' names.
_RECIPE_OPTIONS = (
    "hidden", "epochs", "lr", "batch_size", "dropout", "max_shift", "subset", "seed"
)  # fmt: skip


def _recipe(kind, args, **more):
    """The recipe (``MLPConfig`` or ``CNNConfig``) that the command line asks for."""
    return kind(
        **{name: getattr(args, name) for name in _RECIPE_OPTIONS},
        validation_size=_validation_size(kind.validation_size, args.subset),
        **more,
    )


def _train(args) -> int:
    _check_train_args(args)
    if args.model == "numpy-cnn":
        config = _recipe(CNNConfig, args, channels=args.channels)
        network = f"the CNN {config.channels} + {config.hidden}"
    else:
        config = _recipe(MLPConfig, args)
        network = str(config.hidden)
    recipe = Recipe(args.model, config)
    data = recipe.data(folder=args.data_dir)
    print(
        f"training {network} on {len(data.train.labels):,} images, "
        f"validating on {len(data.validation.labels):,}"
    )
    model, history = recipe.train(data, progress=not args.no_progress)
    print(
        f"validation accuracy after {config.epochs} epochs: "
        f"{history.val_accuracy[-1]:.2%}"
    )
    _, test_accuracy = recipe.test(model, data.test)
    print(f"test accuracy: {test_accuracy:.2%}")
    path = model.save(
        args.output,
        config=dataclasses.asdict(config),
        history=history.as_dict(),
        test_accuracy=test_accuracy,
    )
    print(f"saved to {path}")
    return 0


def _evaluate(args) -> int:
    model = load(args.file)
    test = load_mnist(folder=args.data_dir).test
    X = test.images.reshape(len(test.labels), -1)
    loss, accuracy = model.evaluate(X, test.labels)
    print(
        f"{args.file}: test accuracy {accuracy:.2%}, loss {loss:.4f} "
        f"({len(test.labels):,} images)"
    )
    C = confusion_matrix(test.labels, model.predict(X), 10)
    print("confusion matrix (rows: true digit, columns: predicted digit)")
    print(
        Table(["", *map(str, range(10))], [[str(k), *C[k].tolist()] for k in range(10)])
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _train(args) if args.command == "train" else _evaluate(args)
    except (DataError, ModelFileError, ValueError) as err:
        print(f"dlfp: error: {err}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:  # nothing was saved: say so, in one sentence
        message = str(err).rstrip(".")
        print(f"dlfp: error: {message}; nothing was saved.", file=sys.stderr)
        return 1


if __name__ == "__main__":  # python -m dlfp.cli
    sys.exit(main())
