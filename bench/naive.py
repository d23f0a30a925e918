"""The tutorial way, for scale in bench/throughput.py: one task per article, nlp(text) on
the whole pipeline, then one INSERT and commit per entity. Not part of newsflow."""

from __future__ import annotations

import os
import sqlite3
from functools import cache
from typing import Any

from celery import Celery

app = Celery("naive", broker=os.environ.get("NAIVE_BROKER", "redis://127.0.0.1:6379/15"))
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                worker_hijack_root_logger=False)  # fmt: skip


@cache
def nlp() -> Any:
    from worker.nlp import get_nlp

    return get_nlp()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60)
    conn.execute("CREATE TABLE IF NOT EXISTS entities (article TEXT, name TEXT, label TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS done (article TEXT)")
    return conn


@app.task(name="naive.process")
def process(article_id: str, text: str) -> None:
    doc = nlp()(text)
    conn = _connect(os.environ["NAIVE_DB"])
    for ent in doc.ents:
        conn.execute("INSERT INTO entities VALUES (?, ?, ?)", (article_id, ent.text, ent.label_))
        conn.commit()
    conn.execute("INSERT INTO done VALUES (?)", (article_id,))
    conn.commit()
    conn.close()


def reset(path: str) -> None:
    conn = _connect(path)
    conn.execute("DELETE FROM entities")
    conn.execute("DELETE FROM done")
    conn.commit()
    conn.close()


def count_done(path: str) -> int:
    conn = _connect(path)
    (count,) = conn.execute("SELECT count(*) FROM done").fetchone()
    conn.close()
    return int(count)
