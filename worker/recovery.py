"""The recovery loop: a thread in every worker that re-sends what lost its message.

Messages can be lost (a broker restarted empty, retries that ran out during a long
database outage, a message dropped by a bug); the database knows what is unfinished. Every
NEWSFLOW_RECOVERY_INTERVAL seconds each worker reads which article ids the broker's
messages still name (waiting, or held unacknowledged by a worker), reopens the unfinished
stage rows that no message names and that showed no sign of life for a minute (or the
visibility timeout, if shorter), and sends them again, as Oban's Lifeline plugin rescues
orphaned jobs. A long backlog is not lost work: its messages are in the broker. Claims in
the database make sure that several workers doing this at once send each row once.
"""

from __future__ import annotations

import logging
import threading

from newsflow import delivery, queues
from newsflow.config import Settings

log = logging.getLogger(__name__)


def recover_once(settings: Settings, send: delivery.Send) -> int:
    """One pass; returns how many stage rows were sent again."""
    live = queues.live_ids(queues.redis_client(settings.broker()))
    found = delivery.resend(
        settings.database_url,
        send,
        chunk_size=settings.chunk_size,
        older_than=settings.lost_after,
        unsent_now=False,
        live=live,
    )
    sent = sum(found.sent.values())
    if sent:
        log.warning("recovery: sent again %s", found.sent)
    return sent


def start(settings: Settings, send: delivery.Send) -> threading.Event:
    """Run passes in a daemon thread until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(settings.recovery_interval):
            try:
                recover_once(settings, send)
            except Exception as exc:  # the database or broker is away: try next time
                log.warning("recovery pass failed: %s", type(exc).__name__)

    threading.Thread(target=loop, name="newsflow-recovery", daemon=True).start()
    return stop
