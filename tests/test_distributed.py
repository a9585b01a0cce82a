"""The book's CNN on two processes over 127.0.0.1 (dlfp.frameworks.distributed):
PyTorch's DDP and TensorFlow's MultiWorkerMirroredStrategy against each framework's
one-process step, and the errors a reader meets. Each run has a time limit, and no
worker process outlives it."""

from __future__ import annotations

import os
import socket
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

from dlfp.frameworks import distributed  # noqa: E402


def no_workers_left() -> bool:
    """No process of this user runs a worker module any more."""
    mine = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "dlfp.frameworks.distributed." in command and "--rank" in command:
            mine.append(command)
    return not mine


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_two_processes_take_the_one_process_step(framework):
    rank0 = distributed.launch(framework, workers=2, batch=32, timeout=120)[0]
    # float32: the all-reduced gradient equals the one-process gradient to rounding
    # (measured about 1e-6 relative); per-process batch norm is another function of
    # the batch (measured 1e-2 and more).
    assert rank0["sync"]["grad_rel_diff"] < 1e-4
    assert rank0["local"]["grad_rel_diff"] > 1e-3
    assert rank0["matched"]
    if framework == "torch":  # PyTorch's own SyncBatchNorm, on CPU tensors
        assert "SyncBatchNorm expected input tensor to be on GPU" in rank0["refusal"]
    assert no_workers_left()


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_a_worker_that_dies_stops_the_others(framework):
    with pytest.raises(distributed.DistributedRunError, match="worker 1 of 2 exited"):
        distributed.launch(
            framework, workers=2, batch=8, timeout=60, extra=("--die", "1")
        )
    assert no_workers_left()


def test_a_run_past_its_time_is_stopped():
    with pytest.raises(distributed.DistributedRunError, match="still running after"):
        distributed.launch("torch", workers=2, batch=8, timeout=0.5)
    assert no_workers_left()


def test_a_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(
            ValueError, match=f"port {port} on 127.0.0.1 is in use; pass"
        ):
            distributed.launch("tensorflow", workers=2, batch=8, port=port)
    with pytest.raises(ValueError, match="meet through a file"):
        distributed.launch("torch", workers=2, batch=8, port=port)


def test_free_ports_are_different():
    ports = distributed.free_ports(8)
    assert len(set(ports)) == 8


def test_a_port_taken_after_the_check_says_so(tmp_path):
    """A worker whose port another program took between the launcher's check and its
    start: the error says so, not only that the worker exited."""
    fake = [sys.executable, "-c", "print('bind: Address already in use'); exit(1)"]
    with pytest.raises(
        distributed.DistributedRunError,
        match="worker 0 of 1 could not listen on its port.*run again, or pass port=",
    ):
        distributed._run([(fake, 1)], ["worker 0 of 1"], str(tmp_path), timeout=30)


def test_timings_take_turns_and_report_the_buckets():
    t = distributed.timings("torch", workers=2, batch=16, rounds=2, steps=1)
    assert len(t["solo"]) == len(t["pair"]) == len(t["all_reduce"]) == 2
    assert all(v > 0 for v in (*t["solo"], *t["pair"], *t["all_reduce"]))
    assert t["threads"] == [2, 1, 1]
    # the CNN's float32 gradient fits DDP's first bucket: one bucket
    assert t["bucket_bytes"] == [4 * t["parameters"]] and t["first_bucket_cap"] > 0
    assert no_workers_left()


def test_a_batch_the_workers_cannot_split():
    with pytest.raises(ValueError, match="cannot be split into 2 equal shards"):
        distributed.launch("torch", workers=2, batch=7)
    with pytest.raises(ValueError, match="unknown framework"):
        distributed.launch("jax")


def test_lines_changed_counts_new_and_changed_lines():
    def one(x):
        y = x + 1
        return y

    def many(x):
        # a comment is not code
        x = x * 2
        y = x + 1
        return y

    assert distributed.lines_changed(one, many) == 1
