"""The queue tells whether a key is being reconciled or soon will be (a run waits for its
catalogue entry then: both would write the same status)."""

from __future__ import annotations

import asyncio

from generator.controller.workqueue import WorkQueue
from tests.controller.test_operator import in_fake_time

KEY = ("Workflow", "db", "nightly-1")


def test_a_key_due_soon_or_busy_is_due_within_and_one_due_later_is_not() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        queue = WorkQueue()
        assert not queue.due_within(KEY, 1)  # not queued at all
        queue.add(KEY, 10)
        assert not queue.due_within(KEY, 1)
        assert queue.due_within(KEY, 10)
        await asyncio.sleep(9.5)
        assert queue.due_within(KEY, 1)
        assert await queue.get() == KEY
        assert queue.due_within(KEY, 0)  # being reconciled
        queue.done(KEY)
        assert not queue.due_within(KEY, 1000)

    in_fake_time(test)
