"""The capture reader's thread (sgdp.pipeline.executors._read_ahead): every batch arrives, in order,
whatever its idle work does."""

from __future__ import annotations

import time

from sgdp.pipeline.executors import _read_ahead


def test_the_idle_work_runs_while_the_consumer_is_busy():
    steps = []

    def idle():
        steps.append(1)
        time.sleep(0.001)
        return len(steps) < 5  # five steps, then nothing left until the next wait

    got = []
    for item in _read_ahead(iter(range(6)), depth=1, idle=idle):
        time.sleep(0.02)  # the engine at work: the reader waits with the next batch
        got.append(item)
    assert got == list(range(6))
    assert len(steps) >= 5


def test_a_failing_idle_work_is_dropped_and_every_batch_still_arrives():
    calls = []

    def idle():
        calls.append(1)
        raise RuntimeError("idle work failed")

    got = []
    for item in _read_ahead(iter(range(6)), depth=1, idle=idle):
        time.sleep(0.01)
        got.append(item)
    assert got == list(range(6))
    assert len(calls) == 1  # not called again after it failed
