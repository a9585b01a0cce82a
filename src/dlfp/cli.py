"""The command line: ``dlfp train mlp`` and ``dlfp evaluate FILE``.

``dlfp train mlp`` trains the book's MNIST network (:mod:`dlfp.recipes`) with a progress
bar, prints the test accuracy and saves the model; ``dlfp evaluate FILE`` reports the
accuracy and confusion matrix of a saved model on the MNIST test set. Errors a user can
fix (missing data, a file that is not a model, an option that cannot work) are printed
as one sentence, with exit status 2 and no traceback; options are checked before any
training starts, so a mistake never costs a finished run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .data import DataError, load_mnist, load_mnist_for
from .metrics import confusion_matrix
from .model import ModelFileError, load
from .recipes import MLPConfig, train_mlp
from .report import Table

__all__ = ["main"]


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"hidden widths are integers separated by commas (512,256), not {text!r}"
        ) from None
    if any(w <= 0 for w in widths):
        raise argparse.ArgumentTypeError(
            f"hidden widths must be positive; got {text!r}"
        )
    return widths


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

    train = commands.add_parser(
        "train",
        help="train a model on MNIST",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("model", choices=["mlp"], help="which model (the book's MLP)")
    options = [
        ("--hidden", _widths, defaults.hidden, "hidden widths, comma-separated"),
        ("--epochs", int, defaults.epochs, "passes over the training images"),
        ("--lr", float, defaults.lr, "Adam's peak learning rate"),
        ("--batch-size", int, defaults.batch_size, "images per step"),
        ("--dropout", float, defaults.dropout, "dropout rate after each hidden layer"),
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
    for flag, kind, default, text in options:
        train.add_argument(flag, type=kind, default=default, help=text)
    train.add_argument(
        "--output", "-o", default="mlp.npz", help="where to save the model"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

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
    if args.lr <= 0:
        raise ValueError(f"--lr must be positive, got {args.lr}.")
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


def _train(args) -> int:
    _check_train_args(args)
    config = MLPConfig(
        hidden=args.hidden,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        dropout=args.dropout,
        max_shift=args.max_shift,
        validation_size=min(MLPConfig.validation_size, (args.subset or 60000) // 10),
        subset=args.subset,
        seed=args.seed,
    )
    data = load_mnist_for(config, folder=args.data_dir)
    print(
        f"training {config.hidden} on {len(data.train.labels):,} images, "
        f"validating on {len(data.validation.labels):,}"
    )
    model, history = train_mlp(config, data, progress=not args.no_progress)
    print(
        f"validation accuracy after {config.epochs} epochs: "
        f"{history.val_accuracy[-1]:.2%}"
    )
    _, test_accuracy = model.evaluate(data.test.flat, data.test.labels)
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


if __name__ == "__main__":  # python -m dlfp.cli
    sys.exit(main())
