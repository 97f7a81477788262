"""The micro-batcher: requests that arrive while the model is busy share its next call, and a failing
call fails only the images that cause it."""
import asyncio
import logging
import time
from typing import Callable

from starlette.concurrency import run_in_threadpool

from im2latex.serve.errors import ApiError

log = logging.getLogger(__name__)
Answers = list[tuple[str, float]]  # (LaTeX, confidence) per image


class Job:
    """Images waiting for the model, and the future their request awaits (compared by identity)."""
    __slots__ = ("images", "future")

    def __init__(self, images: list, future: asyncio.Future):
        self.images, self.future = images, future


class Batcher:
    """At most `concurrency` model calls at once, each on every queued image it can take (up to `max_images`,
    oldest first), since batches are faster per image; more than `concurrency + queue` requests waiting
    get 503. When a call raises, each of its requests is re-run alone, so only the one that fails gets
    a 500; every request is answered and no call is left running for a request that is gone."""

    def __init__(self, read: Callable[[list], tuple[list[str], list[float]]], concurrency: int,
                 queue: int, max_images: int, observe: Callable[[int], None] = lambda images: None):
        self.read, self.concurrency, self.queue, self.max_images, self.observe = read, concurrency, queue, max_images, observe
        self.pending: list[Job] = []
        self.waiting = 0  # requests inside submit()
        self.running: set[asyncio.Task] = set()  # model calls under way

    def idle(self) -> bool:
        return not self.pending and not self.running and self.waiting == 0

    async def submit(self, images: list) -> tuple[Answers, float, int]:
        """(answers, milliseconds of the model call, images in that call) for `images`."""
        if self.waiting >= self.concurrency + self.queue:
            raise ApiError(503, "busy: too many predictions queued, retry shortly", {"Retry-After": "1"})
        job = Job(images, asyncio.get_running_loop().create_future())
        job.future.add_done_callback(lambda f: f.cancelled() or f.exception())  # read, even if the client left
        self.waiting += 1
        self.pending.append(job)
        try:
            self._dispatch()
            return await asyncio.shield(job.future)  # a client that leaves cancels its wait, not the batch
        finally:
            self.waiting -= 1
            if job in self.pending:  # never started: nobody needs its answer now
                self.pending.remove(job)

    def _dispatch(self) -> None:
        while self.pending and len(self.running) < self.concurrency:
            batch, count = [], 0
            for job in list(self.pending):
                if batch and count + len(job.images) > self.max_images:
                    break
                self.pending.remove(job)
                batch.append(job)
                count += len(job.images)
            task = asyncio.create_task(self._call(batch))
            self.running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.running.discard(task)
        self._dispatch()

    async def _call(self, batch: list[Job]) -> None:
        try:
            await self._answer(batch)
        finally:  # whatever happened (even cancellation at shutdown), no request waits for ever
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(ApiError(503, "the server stopped before reading this image"))

    async def _answer(self, batch: list[Job]) -> None:
        images = [i for job in batch for i in job.images]
        start = time.perf_counter()
        try:
            texts, scores = await run_in_threadpool(self.read, images)
        except Exception as e:
            if len(batch) > 1:
                log.warning("a model call on %d requests failed (%s); re-running each alone", len(batch), e)
                for job in batch:
                    await self._answer([job])
                return
            log.exception("the model failed on a request of %d images", len(images))
            error = ApiError(500, f"the model failed on this image: {type(e).__name__}")
            if not batch[0].future.done():
                batch[0].future.set_exception(error)
            return
        ms = round(1000 * (time.perf_counter() - start), 1)
        self.observe(len(images))
        for job in batch:
            n = len(job.images)
            if not job.future.done():
                job.future.set_result((list(zip(texts[:n], scores[:n])), ms, len(images)))
            texts, scores = texts[n:], scores[n:]
