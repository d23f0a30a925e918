"""Whole stories in the house styles of the big wires and of a web page, through the clean
stage and the entities of the extract stage, as a news editor would check them."""

from dataclasses import dataclass

import pytest

from worker.clean import Cleaned, clean_article
from worker.entities import EntityOut, extract_entities
from worker.nlp import get_nlp

REUTERS = """Valmera port workers end strike after pay deal

By Helena Sorensen and Marcus Obi

VALMERA, March 3 (Reuters) - Dock workers at Valmera ended a nine-day strike on Tuesday after
the port operator agreed to raise wages by 6 percent, union leader Tomas Kessler said.

Kessler told reporters that the deal would be put to a vote of members next week. Port
operator chief executive Ingrid Albrecht said cargo would move again by Thursday.

Albrecht added that the backlog of ships would take a month to clear.

(Reporting by Helena Sorensen; Editing by Paul Grant)

Our Standards: The Thomson Reuters Trust Principles.
"""

AP = """Governor signs flood defence bill

RIVERTON, Ore. (AP) — Governor Anna Whitfield signed a $2 billion flood defence bill on
Friday, two months after the Corvale River burst its banks and swamped three towns.

"We will not be caught unprepared again," Whitfield said at the signing in Riverton.

State Senator Daniel Okoro, who wrote the bill, said the first levees would be built next
spring. Okoro said the money would also pay for river gauges.

Associated Press writer Lena Marsh in Portland contributed to this report.

Copyright 2026 The Associated Press. All rights reserved.
"""

XINHUA = """China, Kazakhstan pledge closer energy ties

BEIJING, Jan. 5 (Xinhua) -- Chinese Premier Zhou Wenming held talks with Kazakh President
Kassym-Jomart Tokayev in Beijing on Friday, and the two sides pledged closer energy ties.

Zhou said China is ready to work with Kazakhstan to expand trade in oil and gas.

Tokayev said Kazakhstan welcomes Chinese investment in its pipelines.

Chinese Premier Zhou Wenming shakes hands with Kazakh President Kassym-Jomart Tokayev in
Beijing, Jan. 5, 2026. (Xinhua/Li Tao)

Zhou Wenming and Kassym-Jomart Tokayev attend a signing ceremony in Beijing. /Xinhua Photo

Editor: Wang Lin
"""

WEB_PAGE = """<html><head><title>Tram line to open in spring | Elmsford Courier</title>
<meta property="og:title" content="Tram line to open in spring">
<meta name="author" content="Priya Raman">
<meta property="og:site_name" content="Elmsford Courier"></head>
<body>
<div class="cookie">We use cookies to improve your experience. Accept all cookies</div>
<nav><a href="/">Home</a> <a href="/news">News</a></nav>
<article>
<h1>Tram line to open in spring</h1>
<p>Elmsford's first tram line will open in April, city transport director Samuel Adeyemi
said on Wednesday, a year later than planned.</p>
<p>Read more: Why the tram budget doubled</p>
<p>Adeyemi said test runs on the eight-kilometre line would start in February. The city
council approved the last payment to the builder, Kestrel Rail, on Tuesday.</p>
<p>Photo: A tram on a test run in Elmsford in January.</p>
<p>Council leader Maria Castillo said the delay had cost the city 40 million euros.
Castillo promised free rides in the first week.</p>
<p>Subscribe to our newsletter for the latest local news.</p>
</article>
<footer>Follow us on Facebook and X</footer>
</body></html>"""


@dataclass
class Story:
    cleaned: Cleaned
    entities: dict[str, EntityOut]


def process(raw: str, kind: str = "text") -> Story:
    cleaned = clean_article(raw, kind=kind)
    doc = get_nlp()(cleaned.text)
    entities = extract_entities(doc, title=cleaned.title)
    for entity in entities:
        for mention in entity.mentions:
            assert cleaned.text[mention.start : mention.end] == mention.text
            assert "\n" not in mention.text  # no entity spans a paragraph break
    people = [e.name for e in entities if e.label == "PERSON"]
    assert len(people) == len(set(people)), f"one entity per person: {people}"
    return Story(cleaned, {e.name: e for e in entities})


def reasons(cleaned: Cleaned) -> list[str]:
    return [r["reason"] for r in cleaned.removed]


def test_reuters_story() -> None:
    story = process(REUTERS)
    out = story.cleaned
    assert out.title == "Valmera port workers end strike after pay deal"
    assert out.byline == "Helena Sorensen and Marcus Obi"
    assert (out.dateline_place, out.dateline_date, out.agency) == ("Valmera", "March 3", "Reuters")
    assert out.text.startswith("Dock workers at Valmera ended a nine-day strike")
    assert "Reporting by" not in out.text and "Our Standards" not in out.text
    assert reasons(out).count("wire credit") == 2
    assert len(out.text.split("\n\n")) == 3  # paragraphs stay paragraphs
    assert story.entities["Tomas Kessler"].count == 2
    assert story.entities["Ingrid Albrecht"].count == 2
    assert "Kessler" not in story.entities and "Albrecht" not in story.entities


def test_ap_story() -> None:
    story = process(AP)
    out = story.cleaned
    assert out.title == "Governor signs flood defence bill"
    assert (out.dateline_place, out.agency) == ("Riverton, Ore.", "AP")
    assert out.text.startswith("Governor Anna Whitfield signed")
    assert "contributed to this report" not in out.text and "Copyright" not in out.text
    whitfield = story.entities["Anna Whitfield"]
    assert whitfield.label == "PERSON" and whitfield.count == 2
    assert story.entities["Daniel Okoro"].count == 2
    assert "Lena Marsh" not in story.entities  # the credit line is gone with its name


def test_xinhua_story() -> None:
    story = process(XINHUA)
    out = story.cleaned
    assert out.title == "China, Kazakhstan pledge closer energy ties"
    assert (out.dateline_place, out.dateline_date, out.agency) == ("Beijing", "Jan. 5", "Xinhua")
    assert len(out.captions) == 2 and all("Xinhua" in c for c in out.captions)
    assert "shakes hands" not in out.text and "Editor" not in out.text
    assert "editor credit" in reasons(out)
    tokayev = story.entities["Kassym-Jomart Tokayev"]  # not "Kazakh President ..."
    assert tokayev.label == "PERSON" and tokayev.count == 2
    assert story.entities["Zhou Wenming"].count == 2
    top = max(story.entities.values(), key=lambda e: e.salience)
    assert top.label == "PERSON"
    # The dateline's place is not a body entity: Beijing is counted once, from the body.
    assert story.entities["Beijing"].count == 1


def test_web_page_with_cookie_banner_and_read_more_links() -> None:
    story = process(WEB_PAGE, kind="html")
    out = story.cleaned
    assert out.title == "Tram line to open in spring"
    assert out.byline == "Priya Raman"
    assert (out.agency, out.site) == (None, "Elmsford Courier")  # a site is no agency
    assert out.captions == ["Photo: A tram on a test run in Elmsford in January."]
    for furniture in ("cookies", "Read more", "Subscribe", "Follow us", "Home"):
        assert furniture not in out.text
    assert out.text.startswith("Elmsford's first tram line will open in April")
    assert story.entities["Samuel Adeyemi"].count == 2
    assert story.entities["Maria Castillo"].count == 2


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "The United Nations said on Friday that the World Health Organization would "
            "send a team.",
            {"United Nations", "World Health Organization"},
        ),
        (
            "The delegation flew on to Brookfield / Tarnby before the vote.",
            {"Brookfield", "Tarnby"},
        ),
    ],
)
def test_names_lose_a_leading_the_and_split_at_spaced_punctuation(
    text: str, names: set[str]
) -> None:
    entities = extract_entities(get_nlp()(text))
    assert names <= {e.name for e in entities}
    for entity in entities:
        for mention in entity.mentions:
            assert text[mention.start : mention.end] == mention.text
