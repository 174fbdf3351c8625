"""AdaptiveBatcher in-process, TextClassifier's coalescing of concurrent predict calls, the batching flags."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from kserve.protocol.infer_type import InferInput, InferRequest
from prometheus_client import REGISTRY

from serving.batching import AdaptiveBatcher
from serving.cpus import available_cpus
from serving.server import default_torch_threads, parse_args
from serving.text_classifier import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_WAIT_MS, TextClassifier

LONG_WAIT_MS = 10_000  # batches in these tests close because they are full, never on the clock


class Recorder:
    """A batch function that upper-cases its items and remembers every batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        return [item.upper() for item in items]


def test_concurrent_calls_share_one_batch_and_get_their_own_results() -> None:
    recorder = Recorder()
    batcher = AdaptiveBatcher(recorder, max_batch_size=6, max_wait_ms=LONG_WAIT_MS)

    async def scenario() -> list[list[str]]:
        return await asyncio.gather(batcher.submit(["a", "b"]), batcher.submit(["c"]), batcher.submit(["d", "e", "f"]))

    assert asyncio.run(scenario()) == [["A", "B"], ["C"], ["D", "E", "F"]]
    assert recorder.batches == [["a", "b", "c", "d", "e", "f"]]
    assert recorder.threads == {"batch-worker_0"}  # the batcher's own worker thread, not the event loop


def test_batches_hold_at_most_max_batch_size_items_and_never_split_a_call() -> None:
    recorder = Recorder()
    batcher = AdaptiveBatcher(recorder, max_batch_size=4, max_wait_ms=0)
    calls = [["a"], ["b", "c"], ["d", "e"], ["f", "g", "h", "i", "j", "k"], ["l"]]

    async def scenario() -> list[list[str]]:
        return await asyncio.gather(*(batcher.submit(call) for call in calls))

    assert asyncio.run(scenario()) == [[item.upper() for item in call] for call in calls]
    assert recorder.batches == [["a", "b", "c"], ["d", "e"], ["f", "g", "h", "i", "j", "k"], ["l"]]


def test_a_call_arriving_within_the_wait_joins_the_batch() -> None:
    recorder = Recorder()
    batcher = AdaptiveBatcher(recorder, max_batch_size=2, max_wait_ms=LONG_WAIT_MS)

    async def scenario() -> list[list[str]]:
        first = asyncio.create_task(batcher.submit(["early"]))
        await asyncio.sleep(0)  # let the collector take the first call and start waiting for more
        return [*await asyncio.gather(first, batcher.submit(["late"]))]

    assert asyncio.run(scenario()) == [["EARLY"], ["LATE"]]
    assert recorder.batches == [["early", "late"]]


def test_without_wait_a_lone_call_runs_at_once() -> None:
    recorder = Recorder()
    batcher = AdaptiveBatcher(recorder, max_batch_size=64, max_wait_ms=0)
    assert asyncio.run(asyncio.wait_for(batcher.submit(["alone"]), timeout=5)) == ["ALONE"]


def test_the_event_loop_keeps_running_during_a_batch_and_calls_queue_for_the_next() -> None:
    release = threading.Event()
    started = threading.Event()
    batches: list[list[str]] = []

    def blocking(items: list[str]) -> list[str]:
        batches.append(items)
        started.set()
        assert release.wait(timeout=10)
        return items

    batcher = AdaptiveBatcher(blocking, max_batch_size=8, max_wait_ms=0)

    async def scenario() -> None:
        first = asyncio.create_task(batcher.submit(["1"]))
        assert await asyncio.to_thread(started.wait, 10)
        # The batch is blocked in its thread; the loop still runs coroutines and accepts new calls.
        later = [asyncio.create_task(batcher.submit([str(n)])) for n in range(2, 5)]
        await asyncio.sleep(0)
        assert not first.done() and len(batches) == 1
        release.set()
        assert await first == ["1"]
        assert [await task for task in later] == [["2"], ["3"], ["4"]]

    asyncio.run(scenario())
    assert batches == [["1"], ["2", "3", "4"]]


def test_a_failing_batch_fails_its_callers_only() -> None:
    def fragile(items: list[str]) -> list[str]:
        if "bad" in items:
            raise RuntimeError("model exploded")
        return items

    batcher = AdaptiveBatcher(fragile, max_batch_size=2, max_wait_ms=LONG_WAIT_MS)

    async def scenario() -> None:
        results = await asyncio.gather(batcher.submit(["ok"]), batcher.submit(["bad"]), return_exceptions=True)
        assert [str(result) for result in results] == ["model exploded", "model exploded"]
        assert await asyncio.gather(batcher.submit(["x"]), batcher.submit(["y"])) == [["x"], ["y"]]

    asyncio.run(scenario())


def test_a_cancelled_call_is_left_out_of_its_batch() -> None:
    recorder = Recorder()
    batcher = AdaptiveBatcher(recorder, max_batch_size=3, max_wait_ms=LONG_WAIT_MS)

    async def scenario() -> None:
        gone = asyncio.create_task(batcher.submit(["gone"]))
        await asyncio.sleep(0)
        gone.cancel()
        results = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), batcher.submit(["c"]))
        assert results == [["A"], ["B"], ["C"]]

    asyncio.run(scenario())
    assert recorder.batches == [["a", "b", "c"]]


def test_close_cancels_waiting_calls() -> None:
    batcher = AdaptiveBatcher(Recorder(), max_batch_size=8, max_wait_ms=LONG_WAIT_MS)

    async def scenario() -> None:
        waiting = asyncio.create_task(batcher.submit(["never"]))
        await asyncio.sleep(0)
        batcher.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(scenario())


@pytest.mark.parametrize(("size", "wait"), [(0, 1), (1, -1)])
def test_settings_are_checked(size: int, wait: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        AdaptiveBatcher(Recorder(), max_batch_size=size, max_wait_ms=wait)


def test_text_classifier_coalesces_concurrent_v1_and_v2_requests(tiny_model_dir: Path) -> None:
    model = TextClassifier("coalesce", str(tiny_model_dir), max_batch_size=16, max_batch_wait_ms=LONG_WAIT_MS)
    model.load()
    groups = [["my card payment was declined twice"], ["i lost my card", "what is the balance"], ["the account"]]
    v2_texts = ["my card was declined"] * 12  # fills the batch to 16 texts, so it runs at once

    def batches() -> tuple[float, float]:
        labels = {"model": "coalesce"}
        return (REGISTRY.get_sample_value("serving_batch_size_count", labels) or 0.0,
                REGISTRY.get_sample_value("serving_batch_size_sum", labels) or 0.0)  # fmt: skip

    async def scenario() -> list:
        v2 = InferRequest("coalesce", infer_inputs=[InferInput("text", [len(v2_texts)], "BYTES", v2_texts)])
        return await asyncio.gather(*(model.predict({"instances": group}) for group in groups), model.predict(v2))

    before = batches()
    *v1_responses, v2_response = asyncio.run(scenario())
    assert batches() == (before[0] + 1, before[1] + 16)  # one forward pass for all four requests
    for group, response in zip(groups, v1_responses):
        expected = model.classify(group)
        assert [p["label"] for p in response["predictions"]] == [p.label for p in expected]
        assert [p["score"] for p in response["predictions"]] == pytest.approx([p.score for p in expected], abs=1e-5)
    labels = v2_response.outputs[0].data
    assert labels == [p.label for p in model.classify(v2_texts)]
    model.stop()


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--max_batch_size", "0"], "--max_batch_size must be at least 1, got 0"),
        (["--max_batch_wait_ms", "-1"], "--max_batch_wait_ms must be 0 or more, got -1.0"),
        (["--torch_threads", "0"], "--torch_threads must be at least 1, got 0"),
        (["--gil_switch_interval_ms", "0"], "--gil_switch_interval_ms must be positive, got 0.0"),
    ],
)
def test_server_flags_are_checked(flags: list[str], problem: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--model_dir", "model", *flags])
    assert problem in capsys.readouterr().err


def test_server_flag_defaults() -> None:
    args = parse_args(["--model_dir", "model"])
    assert (args.max_batch_size, args.max_batch_wait_ms, args.torch_threads, args.torch_interop_threads) == (
        DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_WAIT_MS, None, 1,
    )  # fmt: skip
    assert args.torchscript and not parse_args(["--model_dir", "model", "--no-torchscript"]).torchscript
    assert default_torch_threads() == available_cpus()
