"""Entities a reader can trust and keyphrases a reader would keep, on the real spaCy model.

Each text is written so that spaCy alone gets it wrong (the spaCy labels are noted where
they matter), and each context rule is checked on both sides: where it applies and where
the same words must leave the model's label alone.
"""

from __future__ import annotations

import pytest

from worker.entities import EntityOut, extract_entities
from worker.keyphrases import extract_keyphrases
from worker.nlp import get_nlp


def entities(text: str) -> dict[str, EntityOut]:
    found = extract_entities(get_nlp()(text), title=None)
    for entity in found:
        for mention in entity.mentions:
            assert text[mention.start : mention.end] == mention.text
    return {e.name: e for e in found}


def labels(text: str) -> dict[str, str]:
    return {name: e.label for name, e in entities(text).items()}


# One entity per thing ------------------------------------------------------------------


def test_one_name_under_several_labels_is_one_entity() -> None:
    # spaCy: Ericsson GPE, then Ericsson PERSON.
    found = entities("Shares in Ericsson rose 4% on Monday. Ericsson said it would cut 300 jobs.")
    assert [(e.name, e.label, e.count) for e in found.values()] == [("Ericsson", "ORG", 2)]


def test_an_abbreviation_in_brackets_and_its_later_uses_join_the_full_name() -> None:
    text = (
        "The International Energy Agency (IEA) cut its forecast. The IEA said demand would "
        "fall. Oil traders said the IEA was too cautious."
    )
    iea = entities(text)["International Energy Agency"]
    assert (iea.label, iea.count, iea.aliases) == ("ORG", 4, ["IEA"])
    assert len(entities(text)) == 1


def test_an_abbreviation_before_its_expansion_joins_it_too() -> None:
    text = (
        "Tara (Total Abstract Rendering Architecture) will ship next year. "
        "Developers said Tara was fast."
    )
    found = entities(text)
    tara = found["Total Abstract Rendering Architecture"]
    assert "Tara" in tara.aliases and tara.count == 3
    assert not any("(" in name or ")" in name for name in found)


def test_a_full_name_spacy_cut_short_is_read_from_the_initials() -> None:
    # spaCy: "the Office of the" ORG, "ODPM" PERSON twice.
    text = (
        "Both the Office of the Deputy Prime Minister (ODPM) and the Land Registry agreed. "
        "The ODPM said so."
    )
    odpm = entities(text)["Office of the Deputy Prime Minister"]
    assert (odpm.label, odpm.count, odpm.aliases) == ("ORG", 3, ["ODPM"])


def test_possessive_and_plural_names_before_a_bracket_keep_their_apostrophes() -> None:
    text = (
        "The rupee rose after Standard & Poor's (S&P) raised the rating. S&P said more. "
        "The event, organised by the Internet Service Providers' Association (ISPA), ended."
    )
    found = entities(text)
    assert found["Standard & Poor's"].aliases == ["S&P"]
    assert found["Internet Service Providers' Association"].aliases == ["ISPA"]


def test_a_bracket_whose_letters_are_not_the_initials_links_nothing() -> None:
    found = entities("Vodafone said sales rose. Vodafone (VOD) shares gained 2%.")
    assert found["Vodafone"].aliases == [] and found["VOD"].count == 1  # a ticker


def test_an_abbreviation_joins_the_one_name_it_spells_without_brackets() -> None:
    found = entities("The European Union agreed the plan. The EU will pay.")
    assert found["European Union"].aliases == ["EU"]
    # Two names spell "BA": the abbreviation could be either, so it stays alone.
    found = entities("British Airways and the British Academy both spoke. BA said fares rose.")
    assert {"British Airways", "British Academy", "BA"} <= set(found)


def test_a_mixed_case_abbreviation_joins_the_name_whose_small_words_it_keeps() -> None:
    found = entities(
        "The Ministry of Defence said the patrol boats would stay in port. The MoD gave no "
        "date for their return, and the Department for Transport said ferries would run."
    )
    assert found["Ministry of Defence"].aliases == ["MoD"] and "MoD" not in found
    assert found["Ministry of Defence"].label == "ORG"
    assert "Department for Transport" in found  # its initials are another name's


def test_an_organisation_named_by_its_last_word_is_that_organisation() -> None:
    found = entities("The European Commission proposed a law. The Commission said it would wait.")
    assert found["European Commission"].aliases == ["Commission"]
    # spaCy: "Cairn" PERSON; it is the first word of the company named before it.
    found = entities("Cairn Energy found gas in Rajasthan. Cairn said output would rise.")
    assert found["Cairn Energy"].aliases == ["Cairn"] and found["Cairn Energy"].label == "ORG"
    # Two commissions: "the Commission" is left alone rather than guessed.
    text = "The European Commission and the Competition Commission met. The Commission said no."
    assert entities(text)["Commission"].count == 1


def test_a_surname_spacy_typed_org_votes_for_the_person_it_belongs_to() -> None:
    # spaCy: "Martin Campbell" PERSON once, "Campbell" ORG twice.
    text = (
        "Director Martin Campbell will make the film. Campbell said filming would start in "
        "January. Campbell has made two earlier films."
    )
    campbell = entities(text)["Martin Campbell"]
    assert (campbell.label, campbell.count) == ("PERSON", 3)


def test_a_name_is_shown_in_mixed_case_when_the_text_writes_it_so() -> None:
    # A headline or dateline in capitals outnumbers the body's one mention.
    found = entities("NAIROBI residents said the storm hit NAIROBI hard. Nairobi officials agreed.")
    assert found["Nairobi"].aliases == ["NAIROBI"]


def test_spacing_and_case_variants_are_one_entity() -> None:
    found = entities("TimeWarner said profits rose. Time Warner owns AOL.")
    assert found["Time Warner"].count == 2 and found["Time Warner"].aliases == ["TimeWarner"]


def test_a_demonyms_singular_and_plural_are_one_entity() -> None:
    found = entities("Italian officials said the Italians would vote. An Italian bank agreed.")
    assert [(e.name, e.count, e.aliases) for e in found.values()] == [("Italian", 3, ["Italians"])]


def test_the_countrys_names_are_one_entity_but_other_americas_are_not() -> None:
    text = (
        "The US envoy arrived on Monday. The United States wants a deal, and America will "
        "pay. The U.S. said no. Bank of America and Latin America were not consulted."
    )
    found = entities(text)
    us = found["United States"]
    assert (us.label, us.count, us.aliases) == ("GPE", 4, ["America", "U.S.", "US"])
    assert found["Bank of America"].label == "ORG" and found["Latin America"].count == 1


def test_a_partys_names_are_one_entity_under_its_name_and_label() -> None:
    # spaCy: Tories NORP, Labour ORG, Tory NORP, Conservative Party ORG, Conservatives NORP.
    text = (
        "The Tories said Labour had broken its promises. Tory leader Michael Howard told the "
        "Conservative Party conference that the Conservatives would cut taxes. The Lib Dems "
        "said the Liberal Democrats would not. The Labour Party said the labour market was "
        "strong."
    )
    found = entities(text)
    tories = found["Conservative Party"]
    assert (tories.label, tories.count) == ("ORG", 4)
    assert tories.aliases == ["Conservatives", "Tories", "Tory"]
    assert (found["Labour Party"].label, found["Labour Party"].count) == ("ORG", 2)
    assert found["Liberal Democrats"].aliases == ["Lib Dems"]


def test_a_name_other_things_share_is_a_party_only_in_its_country() -> None:
    # "Democrats" are a party in Washington, and another one in Rome.
    assert "Democratic Party" in entities("The Democrats in Washington blocked the bill.")
    found = entities("The Democrats won in Rome, Italian newspapers said.")
    assert "Democrats" in found and "Democratic Party" not in found
    # "Labour" alone: no place says which country's party it is.
    assert "Labour Party" not in entities("Labour won the vote in Wellington.")
    assert "Labour Party" in entities("Labour won the vote in Westminster.")


def test_every_article_shows_a_thing_under_the_same_name() -> None:
    """Across articles, whichever form each uses: what a batch's entity table adds up."""
    tories = [
        "The Tories gained seats in the north.",
        "The Conservatives lost two seats in Scotland.",
        "Tory candidates campaigned in London.",
    ]
    assert {(e.name, e.label) for t in tories for e in entities(t).values()} >= {
        ("Conservative Party", "ORG")
    }
    for text in tories:
        assert "Conservative Party" in entities(text), text
    uk = ["Britain will vote in May.", "The UK economy grew.", "The United Kingdom agreed."]
    assert {next(iter(entities(t))) for t in uk} == {"United Kingdom"}


# Clean names -----------------------------------------------------------------------------


def test_names_are_joined_across_an_ampersand_but_two_people_are_not() -> None:
    text = (
        "Standard & Poor's cut the rating of Marks & Spencer on Tuesday. Marks & Spencer "
        "shares fell. Richard Madeley & Judy Finnigan presented the show."
    )
    found = entities(text)
    assert found["Marks & Spencer"].count == 2 and found["Marks & Spencer"].label == "ORG"
    assert "Standard & Poor's" in found  # its 's is part of the name: no noun follows
    assert found["Richard Madeley"].label == found["Judy Finnigan"].label == "PERSON"


def test_a_possessive_is_trimmed_unless_the_name_always_carries_it() -> None:
    assert "Sainsbury's" in entities(
        "Sainsbury's said sales rose. Shoppers at Sainsbury's spent more."
    )
    assert set(entities("Google's profits rose. Google's shares fell.")) == {"Google"}


def test_a_name_starts_at_its_first_capital_not_at_a_joining_word() -> None:
    found = entities(
        "The club named a strong side, with Tom Bale and Marco Rinaldi plus Ryan Ollerby on "
        "the bench. Ollerby came on late."
    )
    assert {"Tom Bale", "Marco Rinaldi", "Ryan Ollerby"} <= set(found)
    assert found["Ryan Ollerby"].count == 2
    found = entities(  # spaCy's span here starts at "plus"
        "The club named a strong side, with Wayne Rooney and Cristiano Ronaldo plus Ryan "
        "Giggs on the bench. Giggs came on late."
    )
    assert found["Ryan Giggs"].count == 2 and not any(n.startswith("plus") for n in found)


def test_titles_are_stripped_and_an_honorific_makes_a_person() -> None:
    assert "Abdullah" in entities("Crown Prince Abdullah met the envoy in Riyadh.")
    assert "Mel Gibson" in entities("Producer Mel Gibson said the film was finished.")
    assert "Mike Read" in entities("The song was recorded by DJ Mike Read on Sunday.")
    # spaCy: "Helena Hessel" ORG; "Ms Hessel" says she is a person.
    found = entities("Ms Hessel said the firm would grow. Helena Hessel founded it in 1998.")
    assert [(e.name, e.label, e.count) for e in found.values()] == [("Helena Hessel", "PERSON", 2)]


def test_no_name_keeps_an_unbalanced_bracket_or_an_edge_quote() -> None:
    text = (
        'The report, "Wake Up Britain", was written for the Shanghai Automotive Industry '
        "Corporation (SAIC. The Institute for Fiscal Studies (IFS) agreed."
    )
    for name in entities(text):
        assert name.count("(") == name.count(")"), name
        assert name[0] not in "\"'“‘" and name[-1] not in '"”', name


def test_capitalised_common_words_are_dropped_unless_the_context_names_them() -> None:
    # spaCy: "Budget" ORG, though the article also writes "budget".
    assert entities("The Budget will be published in March. The budget includes tax cuts.") == {}
    # spaCy: "Schools" ORG at the start of a sentence; the tagger reads it as a noun.
    assert "Schools" not in entities("Schools will close early. Most pupils agreed.")
    # The other side: a name that is also a word, named as a company by its context.
    text = "Shares in Orange fell. The orange logo stays, Orange's chief executive said."
    assert labels(text) == {"Orange": "ORG"}


# Labels from context, each rule on both sides --------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "label"),
    [
        # spaCy: GPE. "Shares in X" names a company ...
        ("Shares in Orange fell.", "Orange", "ORG"),
        # ... but a country keeps its label in the same words.
        ("Shares in Japan fell. Japan's exports rose.", "Japan", "GPE"),
        # spaCy: GPE. A chief executive belongs to a company ...
        (
            "Electrolux will close the plant. Electrolux's chief executive said so.",
            "Electrolux",
            "ORG",
        ),
        # ... a prime minister to a country.
        ("Britain's prime minister met the president of France.", "United Kingdom", "GPE"),
        # spaCy: PERSON. "Chief executive of X" ...
        ("Analysts praised the chief executive of Kesko. Kesko sells food.", "Kesko", "ORG"),
        # ... and without the cue the model's label stands.
        ("Zanussi makes fridges.", "Zanussi", "PERSON"),
        # spaCy: ORG. "Based in X" names a place ...
        ("The firm is based in Porcia. Porcia lost 300 jobs.", "Porcia", "GPE"),
        ("Porcia lost 300 jobs.", "Porcia", "ORG"),
        # spaCy: GPE, ORG. An age after a name says it is a person's ...
        ("Morchio, 57, quit the carmaker on Sunday.", "Morchio", "PERSON"),
        ("Sillerman, 56, bought the rights.", "Sillerman", "PERSON"),
        ("The talks with Morchio failed.", "Morchio", "ORG"),
        # spaCy: GPE. In sport a club is named after its town: "X boss" ...
        ("Newcastle boss Graeme Souness was furious.", "Newcastle", "ORG"),
        # ... "X's ground" (spaCy: GPE twice), "signed from X" (spaCy: PERSON) ...
        ("West Ham's ground was full as Reading lost to West Ham.", "West Ham", "ORG"),
        ("He signed from Anderlecht in May.", "Anderlecht", "ORG"),
        # ... a score beside it (spaCy: "Aston Villa 2-1 Charlton" PERSON) ...
        ("Aston Villa 2-1 Charlton.", "Charlton", "ORG"),
        ("Hull City beat Barnsley 2-1 on Saturday.", "Barnsley", "ORG"),
        # ... or a club's ending (spaCy: PERSON) ...
        ("Leeds United said the deal was off.", "Leeds United", "ORG"),
        # ... but a country's national side is the country.
        (
            "England manager Sven-Goran Eriksson named his squad. England play on Saturday.",
            "England",
            "GPE",
        ),
        ("France coach Raymond Domenech named his squad.", "France", "GPE"),
        # spaCy: PERSON. What kind of work precedes a work's name ...
        ("The film Kinsey won praise. Kinsey was shot in Indiana.", "Kinsey", "WORK_OF_ART"),
        # ... and a person of that name is still a person.
        (
            "Alfred Kinsey studied at Harvard. Kinsey was born in Hoboken.",
            "Alfred Kinsey",
            "PERSON",
        ),
    ],
)
def test_context_cues_decide_the_label(text: str, name: str, label: str) -> None:
    assert labels(text)[name] == label


# Keyphrases ------------------------------------------------------------------------------

BROADBAND = (
    "Broadband take-up in rural Wales doubled last year, the regulator said on Monday. "
    "The economy of the valleys depends on broadband, and people in small villages now "
    "work from home. The rise in broadband connections came after a fibre network reached "
    "remote farms. The regulator said broadband prices fell while line speeds rose. "
    "Business groups said the economy would gain, but people without broadband still "
    "wait for the fibre network. Work on the fibre network will finish next spring."
)


def test_bare_generic_words_make_way_for_specific_phrases() -> None:
    phrases = [p.text for p in extract_keyphrases(get_nlp()(BROADBAND), top=10)]
    top = phrases[:5]
    assert not {"economy", "people", "work", "rise"} & set(top), top
    assert "fibre network" in top
    assert "broadband" in [p.lower() for p in top]  # a common word, but this story's subject


def test_generic_words_may_fill_the_list_after_the_specific_ones() -> None:
    phrases = extract_keyphrases(get_nlp()(BROADBAND), top=10)
    assert [p.score for p in phrases] == sorted((p.score for p in phrases), reverse=True)
    assert phrases[0].score == 1.0
