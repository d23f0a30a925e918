"""Export: every matching record as JSONL or CSV, streamed at the database's pace.

A block of 1,000 submissions is one keyset read (results.blocks); on PostgreSQL one more
statement writes the block's records as JSON text (POSTGRES_RECORDS), so no row of a
record's entities, mentions or summary is read into Python; elsewhere the records are
built from seven statements a block (results.documents) and serialised as they are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from pydantic_core import to_json
from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

from newsflow.contract import STAGES, Status
from newsflow.record import NO_FILTERS, Filters
from producer.results import blocks, documents
from producer.terminal import cell


# A record as JSON text made by PostgreSQL itself, for a block of submissions (`:ids`):
# the export's fast path, which reads no row into Python. row_to_json and array_to_json
# write compact JSON (json_build_object and json_agg would add spaces and line breaks),
# with keys in the order of ArticleRecord's fields. Parsed, a line equals the record
# that `documents` builds (the tests check it on every record they export).
def _children(columns: str, source: str, order: str) -> str:
    """A JSON array of the rows of `source`, each an object of `columns`, in `order`."""
    return (
        f"(SELECT coalesce(array_to_json(array_agg(c)), '[]') FROM "
        f"(SELECT {columns} FROM {source} ORDER BY {order}) c)"
    )


_STAGE_ORDER = " ".join(f"WHEN '{stage}' THEN {i}" for i, stage in enumerate(STAGES))


def _by_stage(alias: str) -> str:
    """The members of a JSON object keyed by stage in pipeline order, each stage row's
    `alias` row as its value (an aggregate over the content's stage rows `s`)."""
    return (
        f"string_agg(to_json(s.stage)::text || ':' || row_to_json({alias})::text, ',' "
        f"ORDER BY CASE s.stage {_STAGE_ORDER} ELSE 9 END)"
    )


# The content's stage rows, read once for both objects made of them (the record's stages,
# and its pipeline's) and the extract stage's version and model.
_STAGES = (
    f"LEFT JOIN LATERAL (SELECT {_by_stage('v')} AS outcomes, {_by_stage('w')} AS versions, "
    "max(s.version) FILTER (WHERE s.stage = 'extract') AS version, "
    "max(s.model) FILTER (WHERE s.stage = 'extract') AS model "
    "FROM stages s, LATERAL (SELECT s.status, s.error, s.seconds) v, "
    "LATERAL (SELECT s.version, s.model) w WHERE s.article_id = m.article_id) g ON true"
)


_MENTIONS = (  # per entity of the content: its mentions, from one read of the content's
    "(SELECT x.entity_idx, array_to_json(array_agg(c ORDER BY x.idx)) AS mentions FROM (SELECT "
    'x.entity_idx, x.idx, x.start, x."end", x.text FROM mentions x WHERE x.article_id = '
    'm.article_id) x, LATERAL (SELECT x.start, x."end", x.text) c '
    "GROUP BY x.entity_idx)"
)
_ENTITIES = _children(
    "e.name, e.label, e.count, e.salience, coalesce(e.aliases, '[]') AS aliases, "
    "coalesce(g.mentions, '[]') AS mentions",
    f"entities e LEFT JOIN {_MENTIONS} g ON g.entity_idx = e.idx WHERE e.article_id = m.article_id",
    "e.idx",
)
_REMOVED = _children(
    "x->'text' AS text, x->'reason' AS reason",
    "json_array_elements(coalesce(a.removed, '[]')) WITH ORDINALITY AS q(x, n)",
    "n",
)
_KEYPHRASES = _children(
    "k.text, k.score", "keyphrases k WHERE k.article_id = m.article_id", "k.rank"
)
_SENTENCES = _children(
    'u.sentence_index AS index, u.start, u."end", u.text',
    "summary_sentences u WHERE u.article_id = m.article_id",
    "u.position",
)
_TITLE = "coalesce(m.title, CASE WHEN a.title IS DISTINCT FROM a.given_title THEN a.title END)"
_PUBLISHED = "coalesce(m.published, a.guessed_published)"
_SOURCE = "coalesce(m.origin, a.site)"  # results.SOURCE


# The ids as one array (see db.among); the range they imply is for the planner: given
# 1,000 ids alone it scanned every submission (60 ms a block at 100,000 stored, ten
# times that at a million).
def _block(joins: str = "") -> str:
    return (
        f"FROM batch_articles m JOIN articles a ON a.id = m.article_id {joins} "
        "WHERE m.id = ANY(:ids) AND m.id BETWEEN :first AND :last ORDER BY m.id"
    )


POSTGRES_RECORDS = text(
    "SELECT row_to_json(r)::text FROM (SELECT m.id, m.article_id AS content_id, "
    "(SELECT count(*) FROM batch_articles o WHERE o.article_id = m.article_id) "
    "AS content_submissions, m.external_id, m.batch_id, m.status, "
    f"{_TITLE} AS title, a.byline, CASE WHEN a.dateline_place IS NOT NULL OR "
    "a.dateline_date IS NOT NULL THEN (SELECT row_to_json(d) FROM (SELECT "
    "a.dateline_place AS place, a.dateline_date AS date) d) END AS dateline, a.agency, a.language, "
    f"{_PUBLISHED} AS published, CASE WHEN m.published IS NOT "
    "NULL THEN 'submitter' WHEN a.guessed_published IS NOT NULL THEN 'article' END "
    f"AS published_from, m.url, {_SOURCE} AS source, m.source AS submitted_from, a.text, "
    f"coalesce(a.captions, '[]') AS captions, a.word_count, {_REMOVED} AS removed, "
    f"{_ENTITIES} AS entities, {_KEYPHRASES} AS keyphrases, "
    "(SELECT row_to_json(y) FROM (SELECT (SELECT coalesce(string_agg(u.text, ' ' ORDER BY "
    "u.position), '') FROM summary_sentences u WHERE u.article_id = m.article_id) AS text, "
    f"{_SENTENCES} AS sentences) y) AS summary, "
    "(SELECT row_to_json(t) FROM (SELECT t.id, t.size, x.similarity, t.first_seen FROM "
    "story_members x JOIN stories t ON t.id = x.story_id WHERE x.article_id = m.article_id) t) "
    "AS story, "
    "coalesce(('{' || g.outcomes || '}')::json, '{}') AS stages, "
    "(SELECT row_to_json(p) FROM (SELECT g.version, g.model, "
    "coalesce(('{' || g.versions || '}')::json, '{}') AS stages) p) AS pipeline "
    f"{_block(_STAGES)}) r"
)
# The CSV row of a record (CSV_FIELDS, as csv_row makes it from the record), made by
# PostgreSQL: a CSV export then parses no JSON and builds no document per record.
POSTGRES_CSV = text(
    "SELECT m.id, m.article_id, (SELECT count(*) FROM batch_articles o WHERE o.article_id = "
    f"m.article_id), m.external_id, m.batch_id, m.status, {_TITLE}, a.byline, "
    "concat_ws(', ', nullif(a.dateline_place, ''), nullif(a.dateline_date, '')), a.agency, "
    f"a.language, {_PUBLISHED}, m.url, {_SOURCE}, a.word_count, "
    "(SELECT string_agg(e.name || ' (' || e.label || ')', '; ' ORDER BY e.idx) FROM entities e "
    "WHERE e.article_id = m.article_id AND e.idx < 10), "
    "(SELECT string_agg(k.text, '; ' ORDER BY k.rank) FROM keyphrases k "
    "WHERE k.article_id = m.article_id), "
    "(SELECT string_agg(u.text, ' ' ORDER BY u.position) FROM summary_sentences u "
    "WHERE u.article_id = m.article_id), "
    "(SELECT string_agg(s.stage || ': ' || s.error, '; ' ORDER BY CASE s.stage "
    f"{_STAGE_ORDER} ELSE 9 END) FROM stages s WHERE s.article_id = m.article_id AND "
    f"s.status = 'failed' AND s.error <> '') {_block()}"
)


def iter_json(
    session: Session, filters: Filters = NO_FILTERS, *, limit: int | None = None
) -> Iterator[str]:
    """Every matching record as one line of JSON, in constant memory; at most `limit`.
    PostgreSQL writes the JSON itself (POSTGRES_RECORDS), a block per statement."""
    if session.get_bind().dialect.name == "postgresql":
        yield from (row[0] for row in _database_rows(session, filters, limit, POSTGRES_RECORDS))
        return
    for members in blocks(session, filters, limit):
        yield from (to_json(doc).decode() for doc in documents(session, members))


def _database_rows(
    session: Session, filters: Filters, limit: int | None, statement: Any
) -> Iterator[Any]:
    """The rows of `statement` for each block of matching submissions. Two server
    processes make each block, a half each (a server process makes its rows on one core,
    and a batch's export may be one block): a second connection on the session's own
    snapshot (pg_export_snapshot, as pg_dump's parallel jobs do) reads what the session
    reads, whatever is committed meanwhile, and makes the second half while the first is
    made and handed on."""
    snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    bind = session.get_bind()
    assert isinstance(bind, Engine)  # a read_scope's: REPEATABLE READ and read only
    helper = bind.connect()
    try:
        helper.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # its first statement
        with ThreadPoolExecutor(max_workers=1) as pool:
            for members in blocks(session, filters, limit):
                half = (len(members) + 1) // 2
                second = members[half:]
                later = pool.submit(_rows_of, helper, statement, second) if second else None
                yield from _rows_of(session.connection(), statement, members[:half])
                if later is not None:
                    yield from later.result()
    finally:
        helper.rollback()
        helper.close()


def _rows_of(connection: Connection, statement: Any, members: list[Any]) -> list[Any]:
    """The rows of `statement` for these submissions, given in id order."""
    ids = {"ids": [m.id for m in members], "first": members[0].id, "last": members[-1].id}
    return list(connection.execute(statement, ids))


CSV_FIELDS = (
    "id",
    "content_id",
    "content_submissions",
    "external_id",
    "batch_id",
    "status",
    "title",
    "byline",
    "dateline",
    "agency",
    "language",
    "published",
    "url",
    "source",
    "word_count",
    "entities",
    "keyphrases",
    "summary",
    "errors",
)


def csv_row(doc: dict[str, Any]) -> dict[str, str]:
    """One flat row per record (a document, see `documents`): top entities and keyphrases
    joined with '; ', and no cell that a spreadsheet would run as a formula."""
    dateline = doc["dateline"]
    failed = {
        stage: s["error"]
        for stage, s in doc["stages"].items()
        if s["status"] == Status.FAILED and s["error"]
    }
    row = {
        **{key: doc[key] for key in CSV_FIELDS if not isinstance(doc.get(key, []), (dict, list))},
        "dateline": ", ".join(v for v in (dateline["place"], dateline["date"]) if v)
        if dateline
        else "",
        "entities": "; ".join(f"{e['name']} ({e['label']})" for e in doc["entities"][:10]),
        "keyphrases": "; ".join(k["text"] for k in doc["keyphrases"]),
        "summary": doc["summary"]["text"],
        "errors": "; ".join(f"{stage}: {error}" for stage, error in failed.items()),
    }
    return {key: cell(value) for key, value in row.items()}


def write_records(
    session: Session,
    out: IO[str],
    *,
    fmt: str = "jsonl",
    filters: Filters = NO_FILTERS,
    limit: int | None = None,
) -> int:
    """Stream records to `out` as JSONL or CSV; returns how many were written. A JSONL
    line parses to the record (the tests check every one they export)."""
    count = 0
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    if writer and session.get_bind().dialect.name == "postgresql":
        rows = csv.writer(out)
        for row in _database_rows(session, filters, limit, POSTGRES_CSV):
            rows.writerow([cell(value) for value in row])
            count += 1
        return count
    for line in iter_json(session, filters, limit=limit):
        if writer:
            writer.writerow(csv_row(json.loads(line)))
        else:
            out.write(line + "\n")
        count += 1
    return count
