"""The article page's highlighting, on records built here (no services needed)."""

from __future__ import annotations

from newsflow.record import ArticleRecord, Entity, Mention, Pipeline, Summary, SummarySentence
from producer.web.pages import highlighted

TEXT = "Ada Brenner runs Northline. Brenner said Northline would grow.\n\nValmera agreed."


def record(entities: list[Entity], sentences: list[SummarySentence]) -> ArticleRecord:
    return ArticleRecord(
        id=1, content_id=1, content_submissions=1, external_id=None, batch_id=1,
        status="done", title="t", byline=None,
        dateline=None, agency=None, language="en", published=None, published_from=None,
        url=None, source=None, submitted_from=None, text=TEXT, captions=[], word_count=9,
        removed=[], entities=entities, keyphrases=[],
        summary=Summary(text=" ".join(s.text for s in sentences), sentences=sentences),
        stages={}, pipeline=Pipeline(version=None, model=None),
    )  # fmt: skip


def span(text: str, nth: int = 0) -> Mention:
    start = -1
    for _ in range(nth + 1):
        start = TEXT.index(text, start + 1)
    return Mention(start=start, end=start + len(text), text=text)


def entity(name: str, label: str, *mentions: Mention) -> Entity:
    return Entity(name=name, label=label, count=len(mentions), salience=0.1, aliases=[],
                  mentions=list(mentions))  # fmt: skip


def sentence(index: int, text: str) -> SummarySentence:
    where = span(text)
    return SummarySentence(index=index, start=where.start, end=where.end, text=text)


def test_every_character_shown_once_and_every_mention_marked() -> None:
    people = entity("Ada Brenner", "PERSON", span("Ada Brenner"), span("Brenner", 1))
    company = entity("Northline", "ORG", span("Northline"), span("Northline", 1))
    place = entity("Valmera", "GPE", span("Valmera"))
    # summary sentences in summary order, which is not the text's
    summary = [sentence(2, "Valmera agreed."), sentence(0, "Ada Brenner runs Northline.")]
    blocks = highlighted(record([people, company, place], summary))
    assert "".join(p.text for b in blocks for p in b.pieces) == TEXT
    marked = {p.mention: p.text for b in blocks for p in b.pieces if p.mention is not None}
    assert sorted(marked.values()) == sorted(["Ada Brenner", "Brenner", "Northline",
                                              "Northline", "Valmera"])  # fmt: skip
    in_summary = ["".join(p.text for p in b.pieces) for b in blocks if b.sentence is not None]
    assert in_summary == ["Ada Brenner runs Northline.", "Valmera agreed."]


def test_an_overlapping_mention_stays_plain_and_a_crossing_one_keeps_one_number() -> None:
    wide = entity("Brenner runs", "ORG", span("Brenner runs"))
    inner = entity("Ada Brenner", "PERSON", span("Ada Brenner"))  # overlaps: left plain
    crossing = Mention(start=TEXT.index("Northline."), end=TEXT.index("Brenner said") + 7,
                       text="Northline. Brenner")  # fmt: skip
    across = entity("Northline Brenner", "ORG", crossing)
    summary = [sentence(0, "Ada Brenner runs Northline.")]
    blocks = highlighted(record([wide, inner, across], summary))
    assert "".join(p.text for b in blocks for p in b.pieces) == TEXT
    pieces = [(p.text, p.mention) for b in blocks for p in b.pieces if p.mention is not None]
    assert pieces == [("Ada Brenner", 0), ("Northline.", 1), (" Brenner", 1)]
