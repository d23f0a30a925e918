"""The three stages over one chunk of article ids: load, compute per article, store.

Plain functions of a database URL and ids (no Celery): the tasks call them, tests can too.
One article that fails records its error and never takes the chunk down with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from newsflow.config import get_settings
from newsflow.db import session_scope
from newsflow.errors import PermanentError
from worker import store
from worker.clean import clean_article
from worker.entities import extract_entities
from worker.keyphrases import extract_keyphrases
from worker.nlp import get_nlp, get_sentencizer, model_label
from worker.store import Outcome
from worker.summarize import split_sentences, summarize

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    """The error text stored on an article: the reason itself for bad input, else its type."""
    if isinstance(exc, PermanentError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _attempt(article_id: int, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
    """Run `work` for one article, timing it; an exception becomes the article's error."""
    started = time.perf_counter()
    try:
        output = work(*args, **kwargs)
    except Exception as exc:
        if not isinstance(exc, PermanentError):
            log.exception("article %s failed", article_id)
        return Outcome(article_id, time.perf_counter() - started, error=describe(exc))
    return Outcome(article_id, time.perf_counter() - started, output=output)


def run_clean(url: str, article_ids: Sequence[int]) -> list[int]:
    """Clean the articles; returns the ids that cleaned, for the next stages."""
    with session_scope(url) as session:
        store.mark_running(session, stage="clean", article_ids=article_ids)
        articles = store.load_raw(session, article_ids)
    outcomes = [
        _attempt(a.id or 0, clean_article, a.raw, kind=a.kind, title=a.given_title)
        for a in articles
    ]
    with session_scope(url) as session:
        store.save_clean(session, outcomes)
    return [o.article_id for o in outcomes if not o.error]


def _docs(nlp: Any, texts: list[str]) -> Iterator[tuple[Any, float, BaseException | None]]:
    """(doc, seconds, error) per text: nlp.pipe for speed, one by one if the batch breaks."""
    started = time.perf_counter()
    done = 0
    try:
        for doc in nlp.pipe(texts, batch_size=len(texts) or 1):
            now = time.perf_counter()
            yield doc, now - started, None
            started, done = now, done + 1
        return
    except Exception:
        log.warning("nlp.pipe failed on a chunk; retrying its articles one by one")
    for text in texts[done:]:
        started = time.perf_counter()
        try:
            yield nlp(text), time.perf_counter() - started, None
        except Exception as exc:
            yield None, time.perf_counter() - started, exc


def _annotate(doc: Any, title: str | None, settings: Any) -> tuple[list[Any], list[Any]]:
    return (
        extract_entities(doc, title=title, numeric=settings.numeric_entities),
        extract_keyphrases(doc, top=settings.keyphrases),
    )


def _summary(sentencizer: Any, text: str, title: str | None, length: int) -> list[Any]:
    return summarize(split_sentences(sentencizer, text), title=title, length=length, text=text)


def run_extract(url: str, article_ids: Sequence[int]) -> int:
    """Entities and keyphrases of the cleaned articles; returns how many were stored."""
    settings = get_settings()
    with session_scope(url) as session:
        rows = store.load_clean(session, article_ids)
        store.mark_running(session, stage="extract", article_ids=[r[0] for r in rows])
    nlp = get_nlp()
    outcomes = []
    with nlp.memory_zone():  # frees the strings this chunk added to the vocab
        for (article_id, _, title), (doc, seconds, error) in zip(
            rows, _docs(nlp, [r[1] for r in rows]), strict=True
        ):
            if error is not None:
                outcomes.append(Outcome(article_id, seconds, error=describe(error)))
                continue
            outcome = _attempt(article_id, _annotate, doc, title, settings)
            outcome.seconds += seconds
            outcomes.append(outcome)
    with session_scope(url) as session:
        store.save_extract(session, outcomes, model=model_label(nlp))
    return len(outcomes)


def run_summarize(url: str, article_ids: Sequence[int]) -> int:
    """Extractive summaries of the cleaned articles; returns how many were stored."""
    length = get_settings().summary_sentences
    with session_scope(url) as session:
        rows = store.load_clean(session, article_ids)
        store.mark_running(session, stage="summarize", article_ids=[r[0] for r in rows])
    sentencizer = get_sentencizer()
    outcomes = [
        _attempt(article_id, _summary, sentencizer, text, title, length)
        for article_id, text, title in rows
    ]
    with session_scope(url) as session:
        store.save_summaries(session, outcomes)
    return len(outcomes)
