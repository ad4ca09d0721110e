"""Waiting on Kaggle: one polling loop with backoff for a submission's score, a dataset's processing and a
kernel's run (``kfold submit --wait``, ``kfold submit --code``). Torch-free; the client is passed in.
"""
from __future__ import annotations

import time
from typing import Callable

from kfold.errors import DataError

__all__ = ["BACKOFF", "MAX_POLL_INTERVAL", "poll", "wait_for_score"]

MAX_POLL_INTERVAL = 60.0
BACKOFF = 1.6

Echo = Callable[[str], None]


def poll(check: Callable[[], tuple[bool, str]], max_seconds: float, interval: float, timeout_message: Callable[[str], str],
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         say: Echo = print):
    """Call ``check()`` -> (done, status) until done; back off x1.6 up to 60 s between checks.

    Returns the last status. Raises DataError(``timeout_message(status)``) when ``max_seconds`` pass first."""
    deadline = clock() + max_seconds
    checks = 0
    while True:
        checks += 1
        done, status = check()
        if done:
            return status
        left = deadline - clock()
        if left <= 0:
            raise DataError(timeout_message(status))
        wait = min(interval, left)
        say(f"  {status} (check {checks}); next check in {wait:.1f} s")
        sleep(wait)
        interval = min(interval * BACKOFF, max(MAX_POLL_INTERVAL, interval))


def wait_for_score(client, competition: str, ref: int, max_seconds: float, interval: float,
                   clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                   say: Echo = print) -> dict:
    """Poll Kaggle's list until submission ``ref`` is COMPLETE or ERROR; back off x1.6 up to 60 s.

    A 429 answer is retried inside the client after its ``Retry-After``. A submission not yet listed
    (eventual consistency) counts as pending. Raises DataError when ``max_seconds`` pass first.
    """
    say(f"waiting for the score of {ref} (at most {max_seconds:g} s)")
    found: dict = {}

    def check() -> tuple[bool, str]:
        row = next((r for r in client.submissions(competition, max_pages=1) if r["ref"] == ref), None)
        found["row"] = row
        status = row["status"] if row else "not listed yet"
        return bool(row) and status in ("COMPLETE", "ERROR"), status

    poll(check, max_seconds, interval,
         lambda status: (f"kaggle: submission {ref} is still {status} after {max_seconds:g} s; "
                         f"see its score later with: kfold submissions -c {competition}"),
         clock=clock, sleep=sleep, say=say)
    return found["row"]
