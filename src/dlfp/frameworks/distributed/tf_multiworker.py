"""A worker process of the book's CNN under TensorFlow's MultiWorkerMirroredStrategy.

Run by :func:`dlfp.frameworks.distributed.launch`, one process per worker::

    python -m dlfp.frameworks.distributed.tf_multiworker --rank 0 --world 2 \\
        --ports 29500,29501 --batch 128 --mode check --out FOLDER

Each process describes the cluster in ``TF_CONFIG`` (every worker's address on
127.0.0.1, and its own index) before it creates the strategy, which then all-reduces
over gRPC between the processes, exactly as between machines. The workers address each
other on 127.0.0.1, but each one's gRPC server listens on its port on every interface
of the machine (TensorFlow binds the wildcard address and offers no setting for it)
until the process ends. ``--mode check`` compares
one step on the global batch with the one-process step (:func:`one_process` against
:func:`w_processes`), with each worker's own batch normalisation and with Keras's
``BatchNormalization(synchronized=True)``, which all-reduces the sums of its
statistics through the strategy (and so works on CPUs); ``--mode time`` times steps,
and an all-reduce alone, in turns with a one-process run (:mod:`._turns`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ...recipes import CNNConfig
from . import _turns

__all__ = ["CONFIG", "CHANGES", "global_batch", "one_process", "w_processes"]

#: The book's CNN with dropout off: each worker would draw its own masks.
CONFIG = CNNConfig(dropout=0.0)

#: What changes from one process to W, beyond the lines :func:`w_processes` changes.
CHANGES = (
    "start W processes, each with TF_CONFIG (the cluster's addresses and its index)",
    "create MultiWorkerMirroredStrategy first, and the model and optimizer in its "
    "scope",
    "give each replica its shard and scale the loss by the global batch: the "
    "optimizer all-reduces (sums) the gradients",
    "batch norm: BatchNormalization(synchronized=True) in the model",
)

tf = keras = build_model = None  # imported in main, after TF_CONFIG is set


def global_batch(batch: int, seed: int = 0):
    """The same global batch in every process: images (B, 28, 28, 1), labels (B,)."""
    rng = np.random.default_rng(seed)
    side = CONFIG.image_side
    images = rng.random((batch, 1, side, side), dtype=np.float32)
    labels = rng.integers(0, CONFIG.classes, batch)
    # The same images as the PyTorch worker's, channels last.
    return images.transpose(0, 2, 3, 1).copy(), labels


def _optimizer():
    return keras.optimizers.AdamW(
        learning_rate=CONFIG.lr, weight_decay=CONFIG.weight_decay
    )


def _loss(y, logits):
    """Cross-entropy of each example (a vector): the caller averages."""
    return keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)


def _model(weights, sync_bn: bool = False):
    """The book's CNN with the given initial weights, its batch normalisation
    synchronised across the strategy's replicas when ``sync_bn``."""
    model = build_model(CONFIG)
    if sync_bn:

        def clone(layer):
            config = layer.get_config()
            if isinstance(layer, keras.layers.BatchNormalization):
                config["synchronized"] = True
            return type(layer).from_config(config)

        model = keras.models.clone_model(model, clone_function=clone)
    model.set_weights(weights)
    return model


def one_process(weights, x, y, steps: int = 1):
    """``steps`` steps of the book's CNN on the global batch, in one process."""
    model = _model(weights)
    optimizer = _optimizer()
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(_loss(y, model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    for _ in range(steps):
        step(x, y)
    return model


def w_processes(strategy, weights, x, y, steps: int = 1, sync_bn: bool = False):
    """The same steps with the strategy, each replica taking its shard."""
    with strategy.scope():
        model = _model(weights, sync_bn)
        optimizer = _optimizer()
        optimizer.build(model.trainable_variables)
    batch = len(x)
    n = batch // strategy.num_replicas_in_sync

    def shard(context):
        r = context.replica_id_in_sync_group
        return x[r * n : (r + 1) * n], y[r * n : (r + 1) * n]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(_loss(y, model(x, training=True))) / batch
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    xs, ys = strategy.experimental_distribute_values_from_function(shard)
    for _ in range(steps):
        strategy.run(step, args=(xs, ys))
    return model


# --- The process --------------------------------------------------------------------


def _gradients(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(_loss(y, model(x, training=True)))
    return tf.concat(
        [tf.reshape(g, [-1]) for g in tape.gradient(loss, model.trainable_variables)], 0
    )


def _distributed_gradients(strategy, weights, x, y, sync_bn):
    """The all-reduced gradient at the initial weights (what the step applies)."""
    with strategy.scope():
        model = _model(weights, sync_bn)
    batch = len(x)
    n = batch // strategy.num_replicas_in_sync

    def shard(context):
        r = context.replica_id_in_sync_group
        return x[r * n : (r + 1) * n], y[r * n : (r + 1) * n]

    @tf.function
    def gradient(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(_loss(y, model(x, training=True))) / batch
        grads = tape.gradient(loss, model.trainable_variables)
        flat = tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
        return tf.distribute.get_replica_context().all_reduce("sum", flat)

    xs, ys = strategy.experimental_distribute_values_from_function(shard)
    result = strategy.run(gradient, args=(xs, ys))
    return strategy.experimental_local_results(result)[0]


def _compare(start, ref, model, g0, g1) -> dict:
    stats = [
        float(np.abs(a - b).max())
        for va, a, b in zip(
            ref.variables, ref.get_weights(), model.get_weights(), strict=True
        )
        if "moving" in va.name
    ]
    p0 = [v.numpy() for v in ref.trainable_variables]
    p1 = [v.numpy() for v in model.trainable_variables]
    s = [v.numpy() for v in start.trainable_variables]
    g0, g1 = np.asarray(g0, np.float64), np.asarray(g1, np.float64)
    diffs = np.concatenate(
        [np.abs(a - b).ravel() for a, b in zip(p0, p1, strict=True)]
    ).astype(np.float64)
    return {
        "param_diff": float(diffs.max()),
        # all but the 0.1 % largest: AdamW turns a rounding difference in a gradient
        # entry near zero into one of up to 2 lr, so the largest alone says little
        "param_diff_p999": float(np.quantile(diffs, 0.999)),
        "lr": CONFIG.lr,
        "grad_rel_diff": float(np.linalg.norm(g1 - g0) / np.linalg.norm(g0)),
        "stats_diff": max(stats),
        "step_size": max(
            float(np.abs(a - b).max()) for a, b in zip(p0, s, strict=True)
        ),
    }


def _timings(strategy, weights, x, y, world, folder, rounds, steps, timeout):
    """Seconds per step (and of an all-reduce alone), in turns with the other run."""
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    if world == 1:
        model = _model(weights)
        optimizer = _optimizer()
        optimizer.build(model.trainable_variables)

        @tf.function
        def one(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(_loss(y, model(x, training=True)))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, model.trainable_variables, strict=True)
            )

        def step():
            one(x, y)

        def reduce():
            pass

    else:
        with strategy.scope():
            model = _model(weights)
            optimizer = _optimizer()
            optimizer.build(model.trainable_variables)
        batch = len(x)
        n = batch // world

        def shard(context):
            r = context.replica_id_in_sync_group
            return x[r * n : (r + 1) * n], y[r * n : (r + 1) * n]

        @tf.function
        def distributed_step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(_loss(y, model(x, training=True))) / batch
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, model.trainable_variables, strict=True)
            )

        xs, ys = strategy.experimental_distribute_values_from_function(shard)
        params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        flat = tf.zeros([params])

        @tf.function
        def all_reduce():
            return tf.distribute.get_replica_context().all_reduce("sum", flat)

        def step():
            strategy.run(distributed_step, args=(xs, ys))

        def reduce():
            strategy.run(all_reduce)

    def warmup():  # tracing and the first allocations
        _turns.warm_up(step, reduce, world)

    def block():
        return _turns.time_block(step, reduce, steps, world)

    rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"] if world > 1 else 0
    blocks = _turns.take_turns(folder, rank, world, rounds, warmup, block, timeout)
    out = {"step": [b["step"] for b in blocks], "warmup": _turns.WARMUP}
    if world > 1:
        out["all_reduce"] = [b["all_reduce"] for b in blocks]
    out["parameters"] = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    out["threads"] = threads
    return out


def main(argv=None) -> None:
    global tf, keras, build_model
    args = _turns.worker_arguments(argv, __doc__.splitlines()[0])
    if args.world > 1:  # one process alone needs no cluster, and opens no port
        workers = [f"127.0.0.1:{p}" for p in args.ports.split(",")][: args.world]
        os.environ["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": workers},
                "task": {"type": "worker", "index": args.rank},
            }
        )
    from .._quiet import import_tensorflow

    tf = import_tensorflow()
    import keras as keras_module

    from ..keras_cnn import build_model as build

    keras, build_model = keras_module, build
    strategy = None
    if args.world > 1:
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=args.timeout
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options
        )
    if args.rank == args.die:
        os._exit(3)  # a worker that dies: the tests' case
    keras.utils.set_random_seed(CONFIG.seed)
    start = build_model(CONFIG)
    weights = start.get_weights()
    x, y = global_batch(args.batch)
    result: dict = {"rank": args.rank, "world": args.world}
    if args.mode == "time":
        result.update(
            _timings(strategy, weights, x, y, args.world, args.out, args.rounds,
                     args.steps, args.timeout)
        )  # fmt: skip
    else:
        ref = one_process(weights, x, y)
        g0 = _gradients(_model(weights), x, y)
        result["batch_norm"] = "Keras BatchNormalization(synchronized=True)"
        for name, sync in (("local", False), ("sync", True)):
            model = w_processes(strategy, weights, x, y, sync_bn=sync)
            g1 = _distributed_gradients(strategy, weights, x, y, sync)
            result[name] = _compare(start, ref, model, g0, g1)
        result["matched"] = result["sync"]["grad_rel_diff"] < 1e-4
    name = "solo" if args.mode == "time" and args.world == 1 else f"rank-{args.rank}"
    (args.out / f"{name}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
