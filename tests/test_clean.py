"""The clean stage's rules, each shown matching and, just as important, not matching."""

import pytest

from newsflow.errors import PermanentError
from worker.clean import clean_article, normalize_agency, parse_byline

WIRE = """Harbour reopens after strike

Harbour reopens after strike

By Jane Doe and John Roe, Transport Correspondents

OSTRAVIA, March 3 (Reuters) - The harbour reopened on Monday after a strike ended.

Dockers approved the deal on Sunday, the union said.

Workers unload a ship at the harbour on Monday. /Xinhua Photo

(Reporting by Jane Doe; Editing by Max Poe)
Please enter your comment!
Please enter your name here
"""


def test_wire_story_is_split_into_fields() -> None:
    out = clean_article(WIRE)
    assert out.title == "Harbour reopens after strike"
    assert out.byline == "Jane Doe and John Roe"
    assert (out.dateline_place, out.dateline_date, out.agency) == ("Ostravia", "March 3", "Reuters")
    assert out.text == (
        "The harbour reopened on Monday after a strike ended.\n\n"
        "Dockers approved the deal on Sunday, the union said."
    )
    assert out.captions == ["Workers unload a ship at the harbour on Monday. /Xinhua Photo"]
    reasons = [r["reason"] for r in out.removed]
    assert reasons == [
        "title",
        "duplicate title",
        "byline",
        "dateline",
        "photo caption",
        "wire credit",
        "comment prompt",
        "comment prompt",
    ]
    assert out.word_count == len(out.text.split())


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Photo: Firefighters at the scene on Tuesday.", "photo caption"),
        ("The minister speaks in Brussels. (Photo: Alex Berg)", "photo caption"),
        ("Crowds gather in the square. [Photo/Agencies]", "photo caption"),
        ("Advertisement", "advertisement"),
        ("You must log in to post a comment.", "comment prompt"),
        ("Read more: Five things to know about the vote", "related links"),
        ("Subscribe to our newsletter for daily updates", "newsletter prompt"),
        ("We use cookies to give you the best experience on our site.", "cookie banner"),
        ("Follow us on Facebook and X", "social prompt"),
        ("Editor: Li Ming", "editor credit"),
        ("Copyright 2026 Example Media. All rights reserved.", "copyright"),
        ("Associated Press writer Kim Lee contributed to this report.", "wire credit"),
        ("DON'T MISS", "related links"),
        ("Flood barriers fail in three towns overnight [VIDEO]", "related links"),
        ("Follow our full coverage of the election at https://example.org/vote", "related links"),
        ("Get the day's news in your inbox. Sign up for our free newsletter.", "newsletter prompt"),
        ("Email Ana Ruiz at aruiz@example.org or follow her @anaruiz.", "contact line"),
        ("Have a tip? Ana Ruiz may be reached at aruiz@example.org.", "contact line"),
        ("Updated at 1:23 p.m.", "timestamp"),
        ("Published: March 4, 2026", "timestamp"),
    ],
)
def test_furniture_lines_are_removed_with_their_reason(line: str, reason: str) -> None:
    out = clean_article(f"The council met on Tuesday to vote.\n\n{line}\n\nIt passed the budget.")
    assert line not in out.text
    assert {"text": line, "reason": reason} in out.removed
    assert "It passed the budget." in out.text


@pytest.mark.parametrize(
    "sentence",
    [
        "The photo of the flooded street, taken by a resident, was shared thousands of times.",
        "Readers can subscribe to the paper's newsletter, the editor said, but few have.",
        "The court ruled that the site's cookie banner broke the consent law, the judge said.",
        "He shared a before/after photo of the bridge.",
        "Share prices rose 3% on Tuesday after the results.",
        "By the end of the day, more than 200 people had left the town.",
        "Readers must log in to post a comment under the new rules, the site said.",
        "Updated figures show exports rose 4% in March.",
        "The ministry said it would follow up with the families [of the victims].",
        "Residents can sign up for flood alerts at the town hall, the mayor said.",
        "Follow-up tests at https://example.org showed no leak, the operator said.",
        "Reporters can email questions to the court, which will answer them on Friday.",
    ],
)
def test_body_sentences_that_mention_furniture_words_stay(sentence: str) -> None:
    out = clean_article(f"The storm hit on Monday night.\n\n{sentence}")
    assert sentence in out.text
    assert out.captions == []


def test_hard_wrapped_lines_join_into_one_paragraph() -> None:
    out = clean_article(
        "Opening line of a story that was\nwrapped at a fixed width by the feed.\n\nNext."
    )
    assert out.text.split("\n\n")[0] == (
        "Opening line of a story that was wrapped at a fixed width by the feed."
    )


def test_html_goes_through_trafilatura_and_the_same_rules() -> None:
    html = """<html><head><title>Dam opens - Daily</title>
    <meta name="author" content="Ana Ruiz"><meta property="og:site_name" content="Valley Daily">
    </head><body><article><h1>Dam opens</h1>
    <p>LISBON (AFP) - The new dam opened on Friday after six years of building, officials said.</p>
    <p>Read more: Our guide to the valley's reservoirs</p>
    <p>It will supply water to 200,000 homes in the region, the operator said on Friday.</p>
    </article></body></html>"""
    out = clean_article(html, kind="html")
    assert out.title == "Dam opens"
    assert out.byline == "Ana Ruiz"
    assert out.agency == "AFP"
    assert out.dateline_place == "Lisbon"
    assert out.text.startswith("The new dam opened on Friday")
    assert "Read more" not in out.text


def test_a_sites_name_is_no_agency_unless_it_is_one() -> None:
    page = """<html><head><title>{0}</title><meta property="og:site_name" content="{0}">
    </head><body><article><h1>Ferry fares rise</h1>
    <p>Ferry fares on the northern routes will rise by a tenth from June, the operator said.</p>
    <p>Passenger groups said the rise would hit island families hardest this summer.</p>
    </article></body></html>"""
    blog = clean_article(page.format("Harbour Notes Blog"), kind="html")
    assert (blog.agency, blog.site) == (None, "Harbour Notes Blog")
    assert clean_article(page.format("Reuters"), kind="html").agency == "Reuters"


def test_source_line_sets_agency_and_names_are_normalised() -> None:
    out = clean_article("A story body sentence here.\n\nSource(s): Xinhua News Agency")
    assert out.agency == "Xinhua"
    assert normalize_agency("Agence France-Presse") == "AFP"
    assert normalize_agency("Valley Wire") == "Valley Wire"


def test_byline_keeps_names_only() -> None:
    assert parse_byline("Sarah Mitchell, Transport Correspondent") == "Sarah Mitchell"
    assert parse_byline("Jane Doe, John Roe and Max Poe") == "Jane Doe, John Roe and Max Poe"
    assert parse_byline("staff reporter") is None


@pytest.mark.parametrize("raw", ["", "   \n\n  ", "Please enter your comment!\nAdvertisement"])
def test_nothing_left_is_a_permanent_error(raw: str) -> None:
    with pytest.raises(PermanentError, match="no body text"):
        clean_article(raw)


@pytest.mark.parametrize(
    "raw",
    ["The mayor opened the fair on Monday. Ostrava", "Police closed the road. Two lanes reopen"],
)
def test_a_one_line_article_that_reads_as_a_headline_is_its_own_body(raw: str) -> None:
    """Its first sentence ends inside it: prose, though no stop closes the line."""
    out = clean_article(raw)
    assert out.text == raw and out.title == raw
    assert "title" not in [r["reason"] for r in out.removed]


def test_a_headline_alone_is_still_no_article() -> None:
    with pytest.raises(PermanentError, match="no body text"):
        clean_article("Harbour reopens after strike\nPlease enter your comment!")


def test_html_without_article_text_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="no article text"):
        clean_article("<html><script>var a = 1;</script><style>p{}</style></html>", kind="html")


@pytest.mark.parametrize(
    ("opening", "agency"), [("(CNN)", "CNN"), ("(CNN) -- ", "CNN"), ("(Reuters) - ", "Reuters")]
)
def test_agency_credit_opening_a_story_is_moved_to_agency(opening: str, agency: str) -> None:
    out = clean_article(f"{opening}The bridge over the Tarn reopened on Friday, officials said.")
    assert out.agency == agency
    assert out.text == "The bridge over the Tarn reopened on Friday, officials said."


def test_a_parenthesis_that_is_not_an_agency_stays() -> None:
    text = "(Updated) The bridge over the Tarn reopened on Friday, officials said."
    assert clean_article(text).text == text


def test_html_headings_and_paragraphs_stay_apart() -> None:
    html = """<html><head><title>Dam opens</title></head><body><article><h1>Dam opens</h1>
    <p>The valley's new dam opened on Friday after six years of building, officials said</p>
    <h2>A decade of drought</h2>
    <p>Rainfall in the valley has been below average in eight of the last ten years.</p>
    </article></body></html>"""
    paragraphs = clean_article(html, kind="html").text.split("\n\n")
    assert "A decade of drought" in paragraphs
    assert len(paragraphs) == 3


@pytest.mark.parametrize(
    ("text", "place", "date", "agency", "body"),
    [
        (
            "MARSEILLE, 14 mars (AFP) - Les dockers du port ont repris le travail lundi après "
            "une semaine de grève, a annoncé le syndicat.",
            "Marseille",
            "14 mars",
            "AFP",
            "Les dockers",
        ),
        (
            "ROSTOCK, 3. März (dpa) - Nach zehn Tagen Streik haben die Hafenarbeiter am Montag "
            "die Arbeit wieder aufgenommen, teilte die Gewerkschaft mit.",
            "Rostock",
            "3. März",
            "dpa",
            "Nach zehn Tagen",
        ),
        (
            "MURCIA, 12 de agosto (EFE) - Los agricultores de la región recibirán ayudas por la "
            "sequía a partir de septiembre, anunció el Gobierno regional.",
            "Murcia",
            "12 de agosto",
            "EFE",
            "Los agricultores",
        ),
        (
            "LISBOA, 2 de maio (Lusa) - O Governo aprovou hoje o novo plano para os portos do "
            "país, disse o ministro das Infraestruturas.",
            "Lisboa",
            "2 de maio",
            "Lusa",
            "O Governo",
        ),
        (
            "ROMA, 7 luglio (ANSA) - Il governo ha approvato oggi il piano per i porti, ha detto "
            "il ministro dei trasporti ai giornalisti.",
            "Roma",
            "7 luglio",
            "ANSA",
            "Il governo",
        ),
        (
            "МОСКВА, 5 сентября /ТАСС/ - Правительство России одобрило новый план развития "
            "портов, сообщил министр транспорта.",
            "Москва",
            "5 сентября",
            "TASS",
            "Правительство",
        ),
        (
            "МОСКВА, 5 сентября - РИА Новости. Правительство России одобрило новый план развития "
            "портов, сообщил министр транспорта.",
            "Москва",
            "5 сентября",
            "RIA Novosti",
            "Правительство",
        ),
        (
            "新华社兰州9月5日电（记者王明）甘肃省今年小麦产量预计比去年增长百分之五，省农业厅五日表示。",
            "兰州",
            "9月5日",
            "Xinhua",
            "甘肃省",
        ),
    ],
)
def test_datelines_of_other_languages_go_to_their_fields(
    text: str, place: str, date: str, agency: str, body: str
) -> None:
    out = clean_article(text)
    assert (out.dateline_place, out.dateline_date, out.agency) == (place, date, agency)
    assert out.text.startswith(body)
    assert "dateline" in [r["reason"] for r in out.removed]


def test_a_capitalised_word_and_a_date_in_another_language_stay_in_the_body() -> None:
    text = "La UE, 14 mars: rien ne change pour les agriculteurs, dit le ministre."
    out = clean_article(text)
    assert out.dateline_place is None and out.text.startswith("La UE")
