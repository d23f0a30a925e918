"""Entities, keyphrases and summaries on the real spaCy model, with texts written here."""

import pytest

from worker.entities import extract_entities
from worker.keyphrases import extract_keyphrases
from worker.nlp import get_nlp, get_sentencizer
from worker.summarize import split_sentences, summarize

STORY = (
    "Foreign Minister Mevlut Cavusoglu met Greek Prime Minister Kyriakos Mitsotakis in Athens "
    "on Tuesday to discuss energy links between Turkey and Greece.\n\n"
    "Cavusoglu said the talks were frank. "
    "Mitsotakis said Greece wanted a pipeline deal by June.\n\n"
    "Cavusoglu later flew to Ankara, where he briefed the cabinet."
)


@pytest.fixture(scope="module")
def doc():  # type: ignore[no-untyped-def]
    return get_nlp()(STORY)


def test_partial_names_join_the_full_name_with_every_mention(doc) -> None:  # type: ignore[no-untyped-def]
    entities = {e.name: e for e in extract_entities(doc, title=None)}
    cavusoglu = entities["Mevlut Cavusoglu"]
    assert cavusoglu.label == "PERSON"
    assert cavusoglu.count == 3
    assert "Cavusoglu" in cavusoglu.aliases
    assert "Cavusoglu" not in entities  # not left behind as a second entity
    for mention in cavusoglu.mentions:
        assert STORY[mention.start : mention.end] == mention.text
    assert entities["Kyriakos Mitsotakis"].count == 2


def test_titles_are_not_part_of_names_and_numbers_are_left_out(doc) -> None:  # type: ignore[no-untyped-def]
    entities = extract_entities(doc, title=None)
    names = {e.name for e in entities}
    assert not any(n.startswith(("Foreign", "Prime", "Greek")) for n in names if " " in n)
    assert not {e.label for e in entities} & {"DATE", "CARDINAL", "TIME"}
    with_numbers = extract_entities(doc, title=None, numeric=True)
    assert "DATE" in {e.label for e in with_numbers}
    money = extract_entities(get_nlp()("The plan costs $2 billion."), title=None, numeric=True)
    assert [(e.name, e.label) for e in money] == [("$2 billion", "MONEY")]


def test_salience_is_a_distribution_led_by_the_main_actor(doc) -> None:  # type: ignore[no-untyped-def]
    entities = extract_entities(doc, title="Cavusoglu visits Athens")
    assert entities[0].name == "Mevlut Cavusoglu"
    assert all(0 <= e.salience <= 1 for e in entities)
    assert sum(e.salience for e in entities) == pytest.approx(1, abs=0.01)


def test_keyphrases_are_ranked_unique_noun_phrases(doc) -> None:  # type: ignore[no-untyped-def]
    phrases = extract_keyphrases(doc, top=5)
    assert 1 <= len(phrases) <= 5
    assert phrases[0].score == 1.0
    assert [p.score for p in phrases] == sorted((p.score for p in phrases), reverse=True)
    lowered = [p.text.casefold() for p in phrases]
    assert len(lowered) == len(set(lowered))
    assert not {"he", "the talks", "it"} & set(lowered)


def test_sentences_never_cross_paragraphs_and_offsets_hold() -> None:
    text = "First paragraph ends here without a stop\n\nSecond one starts. And goes on."
    sentences = split_sentences(get_sentencizer(), text)
    assert [s.text for s in sentences] == [
        "First paragraph ends here without a stop",
        "Second one starts.",
        "And goes on.",
    ]
    assert all(text[s.start : s.end] == s.text for s in sentences)


def test_summary_picks_whole_sentences_in_order_without_questions_or_repeats() -> None:
    text = (
        "The city council approved a new budget for public transport on Monday evening.\n\n"
        "The city council approved the new public transport budget on Monday evening.\n\n"
        "What will it mean for you?\n\n"
        "Bus fares will stay frozen for two more years under the plan, officials said.\n\n"
        "Tram lines will be extended to the northern suburbs by the end of 2028.\n\n"
        "The mayor thanked council members for a quick vote on the measure."
    )
    sentences = split_sentences(get_sentencizer(), text)
    chosen = summarize(sentences, title="Council approves transport budget", length=3, text=text)
    assert len(chosen) == 3
    assert [s.index for s in chosen] == sorted(s.index for s in chosen)
    assert not any(s.text.endswith("?") for s in chosen)
    assert sum("approved" in s.text for s in chosen) == 1  # the near-duplicate is skipped
    assert all(text[s.start : s.end] == s.text for s in chosen)


def test_short_articles_get_short_summaries() -> None:
    text = "Only one real sentence is in this very short story about the town."
    sentences = split_sentences(get_sentencizer(), text)
    assert len(summarize(sentences, length=3, text=text)) == 1
    assert summarize([], length=3) == []


def test_long_summaries_add_the_most_central_sentences() -> None:
    text = (
        "The port of Valmera reopened on Monday after a week-long strike by dockworkers.\n\n"
        "Weather on the coast was mild for the time of year, forecasters said on Monday.\n\n"
        "The dockworkers union approved a wage deal with the port authority late on Sunday.\n\n"
        "A local bakery sold out of bread by noon, its owner said with a broad smile.\n\n"
        "Shipping lines said the strike at the port had diverted dozens of vessels.\n\n"
        "The port authority said the wage deal with the union ends the dockworkers strike.\n\n"
        "A football match in the city was postponed because of heavy traffic nearby."
    )
    sentences = split_sentences(get_sentencizer(), text)
    chosen = [s.index for s in summarize(sentences, length=4, text=text)]
    assert len(chosen) == 4 and chosen == sorted(chosen)
    assert 4 in chosen  # later than the bakery, but about what the article is about
    assert not {3, 6} & set(chosen)  # off the topic
    assert 5 not in chosen  # repeats sentence 2


def test_summary_length_by_ratio_and_by_words() -> None:
    text = "\n\n".join([
        "The city council approved a new transport budget on Monday evening.",
        "Bus fares will stay frozen for two more years under the plan.",
        "Tram lines are to reach the northern suburbs by the end of 2028.",
        "Cyclists welcomed a promise of forty kilometres of protected lanes.",
        "Opposition members said the spending would push up local taxes.",
        "The mayor thanked officials who drafted the proposal over the summer.",
        "Shop owners on the high street fear months of disruptive roadworks.",
        "A public consultation on station designs opens in the spring.",
        "Engineers expect the first new trams to arrive from the factory soon.",
        "Residents can follow the project on a website launched this week.",
    ])  # fmt: skip
    sentences = split_sentences(get_sentencizer(), text)
    assert len(summarize(sentences, ratio=0.2, text=text)) == 2
    assert len(summarize(sentences, ratio=0.4, length=1, text=text)) == 4
    capped = summarize(sentences, length=5, max_words=30, text=text)
    assert len(capped) >= 1 and sum(len(s.text.split()) for s in capped) <= 30
    assert len(summarize(sentences, length=5, max_words=3, text=text)) == 1  # never empty


def test_pipe_batches_keep_order_and_bound_docs_and_characters() -> None:
    from worker.stages.extract import PIPE_BATCH, PIPE_CHARS, _batches

    short, long = "a" * 100, "b" * (PIPE_CHARS + 1)
    texts = [short] * (PIPE_BATCH + 3) + [long] + [short] * 2
    batches = list(_batches(texts))
    assert [t for b in batches for t in b] == texts
    assert all(len(b) <= PIPE_BATCH for b in batches)
    assert [long] in batches  # a text over the budget runs alone, never padded with others
    assert all(sum(map(len, b)) <= PIPE_CHARS for b in batches if long not in b)


def test_keyphrases_keep_hyphenated_compounds_and_leave_out_dates() -> None:
    text = (
        "Dock workers in Valmera ended a nine-day strike on Tuesday. The nine-day strike "
        "had closed the port since Monday, and the port operator raised wages on Tuesday."
    )
    phrases = [p.text for p in extract_keyphrases(get_nlp()(text), top=10)]
    assert "nine-day strike" in phrases
    assert not {"Tuesday", "Monday", "day strike"} & set(phrases)
