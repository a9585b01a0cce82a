"""Train the book's CNN for an epoch in PyTorch and in TensorFlow/Keras, in one process.

Both frameworks get the same configuration (:class:`dlfp.frameworks.CNNConfig`), the
same augmented mini-batches and the same number of threads. Each trains from scratch for
the given number of epochs; the time per epoch, and the test accuracy reached, are
reported. Absolute times depend on the machine and its load: compare the two in the same
run.

A NumPy CNN (``dlfp``) will join the comparison under the key ``dlfp_epoch_s``.

Run:  python benchmarks/cnn.py [--epochs 1] [--threads 2] [--subset N]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

from dlfp.data import load_mnist_for  # noqa: E402
from dlfp.frameworks import CNNConfig, keras_cnn, torch_cnn  # noqa: E402


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--subset",
        type=int,
        default=None,
        help="train on this many images only (quick check)",
    )
    args = parser.parse_args()

    config = CNNConfig(epochs=args.epochs, subset=args.subset)
    data = load_mnist_for(config)
    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    results: dict[str, object] = {}
    for name, module in (("torch", torch_cnn), ("tf", keras_cnn)):
        model, history = module.train(config, data)
        logits = module.predict_logits(model, data.test.images)
        results[f"{name}_epoch_s"] = round(statistics.median(history["seconds"]), 3)
        results[f"{name}_test_acc"] = round(accuracy(logits, data.test.labels), 4)
        print(f"{name}: {history['seconds']} s per epoch", flush=True)

    results.update(
        {
            "ratio_tf_over_torch": round(
                results["tf_epoch_s"] / results["torch_epoch_s"], 3
            ),
            "dlfp_epoch_s": None,  # the NumPy CNN, when dlfp has one
            "epochs": args.epochs,
            "threads": args.threads,
            "train_images": len(data.train.labels),
            "torch": torch.__version__,
            "tensorflow": tf.__version__,
            "torch_device": str(torch_cnn.device()),
            "cpu": platform.processor() or platform.machine(),
        }
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
