"""The three stages over one chunk of article ids: load, compute per article, store.

Plain functions of the settings and ids (no Celery): the tasks call them, tests can too.
One article that fails records its error and never takes the chunk down with it:
- an exception in one article is that article's error;
- when the chunk's time runs out (`interrupt`, the task's soft time limit), what is done
  is stored, and the articles not yet done come back in `resend`, one per message, so the
  slow one runs alone and fails alone;
- a chunk whose previous delivery never finished (its worker was killed) is split into
  one message per article for the same reason; an article whose runs keep dying is given
  up after `MAX_ATTEMPTS` with a reason instead of looping forever.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from newsflow.config import Settings
from newsflow.contract import Stage
from newsflow.db import error_reason, session_scope
from newsflow.errors import ConfigurationError, PermanentError
from newsflow.models import utcnow
from worker import store
from worker.clean import clean_article
from worker.entities import extract_entities
from worker.keyphrases import extract_keyphrases, extract_token_keyphrases
from worker.nlp import entity_model, get_nlp, get_sentencizer, model_label
from worker.store import Outcome
from worker.summarize import split_sentences, summarize, terms_of

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# An nlp.pipe batch: at most PIPE_BATCH docs and, unless one text is longer, PIPE_CHARS
# characters. spaCy pads a batch to its longest text, so peak memory follows docs x longest
# text: measured in one process over 1,200 BBC articles, batches of 8 docs peaked at 388 MB,
# 8 docs within 16,000 characters at 303 MB, in the same time.
PIPE_BATCH = 8
PIPE_CHARS = 16_000
SPACY_MAX_LENGTH = 1_000_000  # spaCy's default nlp.max_length: longer texts it refuses
Interrupt = tuple[type[BaseException], ...]
NoInterrupt: Interrupt = ()


@dataclass
class ChunkResult:
    """What a stage did with a chunk, and what the task must send on."""

    stored: int = 0
    resend: list[list[int]] = field(default_factory=list)  # chunks for this stage again


def describe(exc: BaseException, settings: Settings) -> str:
    """The error text stored on an article: the reason itself for bad input, else its type
    and first line, secrets masked; a database error never carries its SQL or parameters."""
    if isinstance(exc, PermanentError):
        return str(exc)
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {error_reason(exc)}"
    first = (str(exc).strip().splitlines() or [""])[0]
    return settings.mask(f"{type(exc).__name__}: {first}")[: store.ERROR_CHARS]


def timed_out(settings: Settings) -> str:
    return (
        f"took longer than the {settings.task_soft_time_limit} s time limit "
        "(NEWSFLOW_TASK_SOFT_TIME_LIMIT): the article is too long or too malformed to process"
    )


def _attempt(
    settings: Settings,
    article_id: int,
    interrupt: Interrupt,
    work: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> Outcome:
    """Run `work` for one article, timing it; an exception becomes the article's error
    (except `interrupt`, the chunk's time running out, which the caller handles)."""
    started = time.perf_counter()
    try:
        output = work(*args, **kwargs)
    except interrupt:
        raise
    except Exception as exc:
        if not isinstance(exc, PermanentError):
            log.exception("article %s failed", article_id)
        return Outcome(article_id, time.perf_counter() - started, error=describe(exc, settings))
    return Outcome(article_id, time.perf_counter() - started, output=output)


def _begin(
    settings: Settings, stage: str, article_ids: Sequence[int], claim: str | None
) -> tuple[list[int], list[list[int]]]:
    """Mark the chunk started; returns (ids to run now, singleton chunks to send instead)."""
    stale_before = utcnow() - timedelta(seconds=settings.visibility_timeout)
    with session_scope(settings.database_url) as session:
        start = store.start(
            session,
            stage=stage,
            article_ids=article_ids,
            claim=claim or f"{uuid.uuid4()}#0",
            stale_before=stale_before,
            max_attempts=MAX_ATTEMPTS,
        )
    if start.resend:
        log.warning("%s chunk %s died before; splitting it", stage, list(article_ids))
    if start.skipped:
        log.info("%s: %s skipped (done, or running elsewhere)", stage, start.skipped)
    if start.unknown:
        log.error(
            "%s message names articles with no %s row (not in this database, or not cleaned "
            "yet), ignored: %s",
            stage,
            stage,
            start.unknown,
        )
    return start.ids, start.resend


def _chunk(
    ids: list[int],
    work: Callable[[int], Outcome],
    interrupt: Interrupt,
    settings: Settings,
) -> tuple[list[Outcome], list[list[int]]]:
    """Outcomes article by article until `interrupt`; then the rest goes back as singletons."""
    outcomes: list[Outcome] = []
    for position, article_id in enumerate(ids):
        started = time.perf_counter()
        try:
            outcomes.append(work(article_id))
        except interrupt:
            seconds = time.perf_counter() - started
            outcomes.append(Outcome(article_id, seconds, error=timed_out(settings)))
            return outcomes, [[i] for i in ids[position + 1 :]]
    return outcomes, []


def run_clean(
    settings: Settings,
    article_ids: Sequence[int],
    interrupt: Interrupt = NoInterrupt,
    claim: str | None = None,
) -> ChunkResult:
    """Clean the articles (the task then sends the cleaned ones on to the next stages)."""
    ids, resend = _begin(settings, Stage.CLEAN, article_ids, claim)
    if not ids:
        return ChunkResult(resend=resend)
    with session_scope(settings.database_url) as session:
        articles = {a.id: a for a in store.load_raw(session, ids)}

    def work(article_id: int) -> Outcome:
        a = articles[article_id]
        return _attempt(
            settings,
            article_id,
            interrupt,
            clean_article,
            a.raw,
            kind=a.kind,
            title=a.given_title,
            max_elements=settings.max_html_elements,
        )

    outcomes, resend = _chunk([i for i in ids if i in articles], work, interrupt, settings)
    with session_scope(settings.database_url) as session:
        store.save_clean(session, outcomes)
    return ChunkResult(stored=len(outcomes), resend=resend)


def _admitted(
    rows: list[store.CleanRow], max_chars: int
) -> tuple[list[store.CleanRow], list[Outcome]]:
    """Rows the extract stage can take, and failures, with the reason, for the rest."""
    admitted, refused = [], []
    for row in rows:
        if len(row.text) <= max_chars:
            admitted.append(row)
            continue
        reason = (
            f"article text is {len(row.text):,} characters, over the {max_chars:,} "
            "the extract stage takes (NEWSFLOW_MAX_EXTRACT_CHARS, which bounds a "
            "worker's memory); split the article or raise the limit"
        )
        refused.append(Outcome(row.id, 0.0, error=reason))
    return admitted, refused


def _begin_cleaned(
    settings: Settings, stage: str, article_ids: Sequence[int], claim: str | None
) -> tuple[list[store.CleanRow], list[list[int]]]:
    """For the stages after clean: (rows to run, singleton chunks to send instead)."""
    ids, resend = _begin(settings, stage, article_ids, claim)
    if not ids:
        return [], resend
    with session_scope(settings.database_url) as session:
        return store.load_clean(session, ids), resend


def _batches(texts: list[str]) -> Iterator[list[str]]:
    """Consecutive texts grouped within PIPE_BATCH docs and PIPE_CHARS characters."""
    batch: list[str] = []
    chars = 0
    for text in texts:
        if batch and (len(batch) == PIPE_BATCH or chars + len(text) > PIPE_CHARS):
            yield batch
            batch, chars = [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        yield batch


def _docs(
    nlp: Any, texts: list[str], interrupt: Interrupt, settings: Settings
) -> Iterator[tuple[Any, float, BaseException | None]]:
    """(doc, seconds, error) per text: nlp.pipe for speed, one by one if the batch breaks."""
    started = time.perf_counter()
    done = 0
    try:
        for doc in (d for b in _batches(texts) for d in nlp.pipe(b, batch_size=len(b))):
            now = time.perf_counter()
            yield doc, now - started, None
            started, done = now, done + 1
        return
    except interrupt:
        raise
    except Exception as exc:
        log.warning("nlp.pipe failed on a chunk (%s); going on one by one", describe(exc, settings))
    for text in texts[done:]:
        started = time.perf_counter()
        try:
            yield nlp(text), time.perf_counter() - started, None
        except interrupt:
            raise
        except Exception as exc:
            yield None, time.perf_counter() - started, exc


def _annotate(doc: Any, title: str | None, settings: Settings) -> tuple[list[Any], list[Any]]:
    return (
        extract_entities(doc, title=title, numeric=settings.numeric_entities),
        extract_keyphrases(doc, top=settings.keyphrases),
    )


def _keyphrases_only(doc: Any, settings: Settings) -> tuple[list[Any], list[Any]]:
    return [], extract_token_keyphrases(doc, top=settings.keyphrases)


def _no_entity_model(language: str) -> str:
    return (
        f"entities skipped: no entity model for language {language!r} (NEWSFLOW_MODELS names "
        "one per language, e.g. fr=fr_core_news_sm); keyphrases from its tokenizer"
    )


def _pipelines(
    rows: list[store.CleanRow], settings: Settings
) -> dict[tuple[str | None, str], list[store.CleanRow]]:
    """The rows grouped by what runs on them: (entity model, "") for languages with an
    entity model, (None, language code) for each other language."""
    models = settings.entity_models()
    groups: dict[tuple[str | None, str], list[store.CleanRow]] = {}
    for row in rows:
        model = entity_model(models, row.language)
        key = (model, "") if model else (None, row.language or "xx")
        groups.setdefault(key, []).append(row)
    return groups


def run_extract(
    settings: Settings,
    article_ids: Sequence[int],
    interrupt: Interrupt = NoInterrupt,
    claim: str | None = None,
) -> ChunkResult:
    """Entities and keyphrases of the cleaned articles: with the language's entity model
    when one is configured, else keyphrases from its tokenizer and entities skipped."""
    max_chars = min(SPACY_MAX_LENGTH, settings.max_extract_chars)
    cleaned, resend = _begin_cleaned(settings, Stage.EXTRACT, article_ids, claim)
    rows, outcomes = _admitted(cleaned, max_chars)
    if not rows and not outcomes:
        return ChunkResult(resend=resend)
    try:
        for (model, language), group in _pipelines(rows, settings).items():
            try:
                nlp = get_nlp(model) if model else get_sentencizer(language)
            except ConfigurationError as exc:  # a configured model that is not installed
                outcomes.extend(Outcome(row.id, 0.0, error=str(exc)) for row in group)
                continue
            label = model_label(nlp)
            with nlp.memory_zone():  # frees the strings this chunk added to the vocab
                texts = [row.text for row in group]
                for row, (doc, seconds, error) in zip(
                    group, _docs(nlp, texts, interrupt, settings), strict=True
                ):
                    if error is not None:
                        outcomes.append(Outcome(row.id, seconds, error=describe(error, settings)))
                        continue
                    if model:
                        outcome = _attempt(
                            settings, row.id, interrupt, _annotate, doc, row.title, settings
                        )
                    else:
                        outcome = _attempt(
                            settings, row.id, interrupt, _keyphrases_only, doc, settings
                        )
                        outcome.skipped = None if outcome.error else _no_entity_model(language)
                    outcome.seconds += seconds
                    outcome.model = label
                    outcomes.append(outcome)
    except interrupt:
        finished = {o.article_id for o in outcomes}
        left = [row.id for row in rows if row.id not in finished]
        if len(left) == 1:  # the one article still in the pipe is the slow one
            outcomes.append(Outcome(left[0], 0.0, error=timed_out(settings)))
        else:
            resend = [[i] for i in left]
    with session_scope(settings.database_url) as session:
        store.save_extract(session, outcomes)
    return ChunkResult(stored=len(outcomes), resend=resend)


def _summary(
    sentencizer: Any, text: str, title: str | None, language: str | None, settings: Settings
) -> list[Any]:
    return summarize(
        split_sentences(sentencizer, text, language),
        title_terms=terms_of(sentencizer, title or ""),
        text=text,
        length=settings.summary_sentences,
        ratio=settings.summary_ratio,
        max_words=settings.summary_words,
    )


def run_summarize(
    settings: Settings,
    article_ids: Sequence[int],
    interrupt: Interrupt = NoInterrupt,
    claim: str | None = None,
) -> ChunkResult:
    """Extractive summaries of the cleaned articles."""
    cleaned, resend = _begin_cleaned(settings, Stage.SUMMARIZE, article_ids, claim)
    if not cleaned:
        return ChunkResult(resend=resend)
    rows = {row.id: row for row in cleaned}

    def work(article_id: int) -> Outcome:
        row = rows[article_id]
        sentencizer = get_sentencizer(row.language)
        return _attempt(
            settings, article_id, interrupt, _summary, sentencizer, row.text, row.title,
            row.language, settings,
        )  # fmt: skip

    outcomes, resend = _chunk(list(rows), work, interrupt, settings)
    with session_scope(settings.database_url) as session:
        store.save_summaries(session, outcomes)
    return ChunkResult(stored=len(outcomes), resend=resend)


def fail_chunk(url: str, stage: str, article_ids: Sequence[int], error: str) -> None:
    """Record an error for every article of a chunk that could not run at all; ids this
    database does not know are logged, not silently dropped."""
    with session_scope(url) as session:
        known = store.existing(session, article_ids)
        store.save_stages(
            session, stage=stage, outcomes=[Outcome(i, 0.0, error=error) for i in known]
        )
    if unknown := sorted(set(article_ids) - set(known)):
        log.error("%s message names articles this database does not have: %s", stage, unknown)
