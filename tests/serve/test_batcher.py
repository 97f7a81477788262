"""The micro-batcher alone, with stand-in readers: batching, the failure path, clients that leave."""
import asyncio
import time

import pytest
import torch

from im2latex.serve.batcher import Batcher
from im2latex.serve.errors import ApiError


def image(width: int) -> torch.Tensor:
    return torch.zeros(8, width, dtype=torch.uint8)


def slow_reader(calls: list, poison: int | None = None, seconds: float = 0.05):
    def read(images):
        calls.append(len(images))
        time.sleep(seconds)
        if poison is not None and any(i.shape[1] == poison for i in images):
            raise RuntimeError("cannot")
        return [f"w{i.shape[1]}" for i in images], [0.5] * len(images)
    return read


@pytest.mark.parametrize("concurrency", [1, 2])
def test_failures_are_answered_alone_and_nothing_is_left_running(concurrency):
    calls = []
    batcher = Batcher(slow_reader(calls, poison=13), concurrency, queue=32, max_images=8)

    async def main():
        widths = [10, 11, 13, 12, 14, 13, 15, 16, 17, 18]
        results = await asyncio.wait_for(asyncio.gather(*(batcher.submit([image(w)]) for w in widths),
                                                        return_exceptions=True), timeout=10)
        return widths, results
    widths, results = asyncio.run(main())
    for w, result in zip(widths, results):
        if w == 13:
            assert isinstance(result, ApiError) and result.status == 500
        else:
            assert result[0] == [(f"w{w}", 0.5)]
    assert batcher.idle() and max(calls) > 1  # batched, then re-run alone where a batch failed


def test_a_client_that_leaves_does_not_stop_the_others():
    calls = []
    batcher = Batcher(slow_reader(calls, seconds=0.2), 1, queue=8, max_images=8)

    async def main():
        first = asyncio.create_task(batcher.submit([image(10)]))
        await asyncio.sleep(0.05)  # the first call is running; these two queue behind it
        leaving = asyncio.create_task(batcher.submit([image(11)]))
        staying = asyncio.create_task(batcher.submit([image(12)]))
        await asyncio.sleep(0.01)
        leaving.cancel()
        return await asyncio.wait_for(asyncio.gather(first, staying), timeout=5)
    first, staying = asyncio.run(main())
    assert first[0] == [("w10", 0.5)] and staying[0] == [("w12", 0.5)]
    assert calls == [1, 1] and batcher.idle()  # the image of the client that left was never read


def test_over_concurrency_plus_queue_is_busy():
    batcher = Batcher(slow_reader([], seconds=0.2), 1, queue=1, max_images=8)

    async def main():
        return await asyncio.gather(*(batcher.submit([image(10)]) for _ in range(4)), return_exceptions=True)
    results = asyncio.run(main())
    busy = [r for r in results if isinstance(r, ApiError)]
    assert len(busy) == 2 and all(r.status == 503 and r.headers == {"Retry-After": "1"} for r in busy)
