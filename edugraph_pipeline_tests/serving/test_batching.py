"""BatchQueue on a plain function: who is batched with whom, order, oversize requests, give-ups, failures."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edugraph_pipeline.serving.batching import BatchQueue


class Doubler:
    """A blocking 'model': records each batch and the thread it ran in; fails on a negative input."""

    def __init__(self, delay: float = 0.0):
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()
        self.delay = delay

    def __call__(self, items: list[int]) -> list[int]:
        import time

        self.threads.add(threading.get_ident())
        self.batches.append(list(items))
        time.sleep(self.delay)
        if any(item < 0 for item in items):
            raise ValueError("negative input")
        return [item * 2 for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_batches_and_keep_their_order():
    model = Doubler(delay=0.05)

    async def scenario():
        queue = BatchQueue(model, max_batch_images=4, window_s=0.05)
        queue.start()
        answers = await asyncio.gather(*(queue.submit([10 * n, 10 * n + 1]) for n in range(6)))
        await queue.stop()
        return answers

    answers = run(scenario())
    assert answers == [[20 * n, 20 * n + 2] for n in range(6)]
    assert sorted(len(batch) for batch in model.batches) == [4, 4, 4]  # 6 requests x 2 images, 4 per batch
    assert threading.get_ident() not in model.threads  # the blocking call ran off the event loop


def test_oversize_request_is_a_batch_of_its_own_and_window_zero_does_not_wait():
    model = Doubler()

    async def scenario():
        queue = BatchQueue(model, max_batch_images=2, window_s=0)
        queue.start()
        big = await queue.submit([1, 2, 3, 4, 5])
        small = await queue.submit([7])
        await queue.stop()
        return big, small

    assert run(scenario()) == ([2, 4, 6, 8, 10], [14])
    assert model.batches == [[1, 2, 3, 4, 5], [7]]


def test_failure_reaches_its_batch_only_and_the_worker_goes_on():
    model = Doubler()

    async def scenario():
        queue = BatchQueue(model, max_batch_images=1, window_s=0)
        queue.start()
        with pytest.raises(ValueError, match="negative input"):
            await queue.submit([-1])
        after = await queue.submit([3])
        await queue.stop()
        return after

    assert run(scenario()) == [6]


def test_a_request_given_up_before_its_batch_is_not_computed():
    model = Doubler(delay=0.3)

    async def scenario():
        queue = BatchQueue(model, max_batch_images=1, window_s=0)
        queue.start()
        first = asyncio.ensure_future(queue.submit([1]))
        await asyncio.sleep(0.05)  # the first batch is running now
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await queue.submit([2])
        assert await first == [2]
        assert await queue.submit([3]) == [6]
        await queue.stop()

    run(scenario())
    assert model.batches == [[1], [3]]


@pytest.mark.parametrize("kwargs", [{"max_batch_images": 0}, {"window_s": -1}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        BatchQueue(Doubler(), **kwargs)
