"""The clean stage: raw text or HTML -> body, title, byline, dateline, agency, captions.

Scraped text is read line by line. Each line is either page furniture (removed, with the
reason recorded), metadata (title, byline, dateline, source line: moved to its field) or
body. Rules match whole lines by their shape, never a word inside a sentence, so a body
sentence that merely mentions a photo or a newsletter stays. Body lines that were hard
wrapped are joined back into paragraphs; paragraphs are separated by a blank line.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from newsflow.errors import PermanentError
from worker.nlp import detect_language

AGENCIES = {
    "xinhua": "Xinhua",
    "xinhua news agency": "Xinhua",
    "xinhuanet": "Xinhua",
    "reuters": "Reuters",
    "thomson reuters": "Reuters",
    "ap": "AP",
    "associated press": "AP",
    "the associated press": "AP",
    "afp": "AFP",
    "agence france-presse": "AFP",
    "agence france presse": "AFP",
    "upi": "UPI",
    "dpa": "dpa",
    "bloomberg": "Bloomberg",
    "kyodo": "Kyodo",
    "kyodo news": "Kyodo",
    "yonhap": "Yonhap",
    "tass": "TASS",
    "efe": "EFE",
    "ani": "ANI",
    "pti": "PTI",
    "ians": "IANS",
    "anadolu agency": "Anadolu",
    "china daily": "China Daily",
    "cgtn": "CGTN",
    "cnn": "CNN",
    "bbc": "BBC",
    "ansa": "ANSA",
    "lusa": "Lusa",
    "apa": "APA",
    "belga": "Belga",
    "anp": "ANP",
    "europa press": "Europa Press",
    "notimex": "Notimex",
    "interfax": "Interfax",
    "интерфакс": "Interfax",
    "ria novosti": "RIA Novosti",
    "риа новости": "RIA Novosti",
    "тасс": "TASS",
    "итар-тасс": "TASS",
    "anadolu": "Anadolu",
    "新华社": "Xinhua",
    "中新社": "China News Service",
    "中新网": "China News Service",
}

MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
DASH = r"(?:--|-|—|–)"
# A date as wire datelines write it: "March 3", "14 mars", "3. März", "12 de agosto",
# "7 luglio", "5 сентября" (a year may follow).
DATE = (
    rf"{MONTH}\s+\d{{1,2}}(?:,\s*\d{{4}})?"
    r"|\d{1,2}(?:er)?\s+(?i:janvier|février|mars|avril|mai|juin|juillet|août|septembre|"
    r"octobre|novembre|décembre)"
    r"|\d{1,2}\.\s*(?:Januar|Jänner|Februar|März|April|Mai|Juni|Juli|August|September|"
    r"Oktober|November|Dezember)"
    r"|\d{1,2}\s+de\s+(?i:enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|"
    r"setiembre|octubre|noviembre|diciembre|janeiro|fevereiro|março|maio|junho|julho|"
    r"setembro|outubro|novembro|dezembro)"
    r"|\d{1,2}\s+(?i:gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|agosto|settembre|"
    r"ottobre|novembre|dicembre)"
    r"|\d{1,2}\s+(?i:января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|"
    r"ноября|декабря)"
)
PLACE_WORD = r"[^\W\d_](?:[^\W\d_]|[.'’\-])*"  # letters of any script, no digits
# "PLACE, DATE (AGENCY) - ": the place in capitals of any script (checked on the match:
# a regular expression has no class of capital letters in every script), the agency in
# brackets or, as TASS writes it, between slashes.
DATELINE = re.compile(
    rf"""^(?P<place>{PLACE_WORD}(?:\s{PLACE_WORD}){{0,3}})
    (?P<state>,\s[A-Z][a-z]+\.?)?
    (?:,\s*(?P<date>(?:{DATE})(?:\s+(?:de\s+)?\d{{4}})?))?
    \s*(?:\((?P<agency>[^\W\d_][\w .&'-]{{0,40}})\)|/(?P<slashed>[^\W\d_][\w .&'-]{{0,40}})/)?
    \s*{DASH}\s+(?=\S)""",
    re.X,
)
# "МОСКВА, 5 сентября - РИА Новости. Text": the agency after the dash.
AGENCY_AFTER = re.compile(r"^(?P<agency>[^\W\d_][\w -]{1,30}?)\.\s+(?=\S)")
# "新华社兰州9月5日电（记者王明）": agency, place, date, then the reporter in brackets.
CHINESE_DATELINE = re.compile(
    r"^(?P<agency>新华社|中新社|中新网)(?P<place>[\u4e00-\u9fff]{1,8}?)"
    r"(?P<date>\d{1,2}月\d{1,2}日)电(?:[（(](?:记者|通讯员)[^）)]{0,40}[）)])?\s*"
)
# "(CNN) -- Text" or "(Reuters) - Text": an agency credit opening the story, no place.
AGENCY_OPENING = re.compile(
    rf"^\((?P<agency>[A-Za-z][\w .&'-]{{1,40}})\)\s*(?:{DASH}\s*)?(?=[\"“‘'A-Z])"
)
BYLINE = re.compile(r"^by\s+(?P<rest>[A-Z].{1,150})$", re.I)
BYLINE_ROLE = re.compile(
    r"\b(correspondent|reporter|editor|writer|staff|contributor|bureau|chief|columnist|"
    r"analyst|news|agency|desk|press|in\s+[A-Z])",
    re.I,
)
NAME = re.compile(r"^[A-Z][\w.'’-]*(?:\s+(?:[A-Z][\w.'’-]*|de|van|von|al|bin|da|di|la|le)){0,4}$")
SOURCE = re.compile(r"^sources?(?:\s*\(s\))?\s*:\s*(?P<agency>.{2,80}?)\.?$", re.I)


@dataclass(frozen=True)
class Rule:
    """A whole-line pattern for furniture; `max_words` keeps it off real paragraphs."""

    reason: str
    pattern: re.Pattern[str]
    max_words: int = 25


def _rule(reason: str, pattern: str, max_words: int = 25) -> Rule:
    return Rule(reason, re.compile(pattern, re.I), max_words)


CAPTION_RULES = (
    _rule(
        "photo caption",
        r"(?:^|\s)/\s*(?-i:[A-Z])[\w .&'-]{0,40}?\b(?:photo|pic|image)s?\.?\)?$",
        120,
    ),
    _rule("photo caption", r"\((?:photo|image|picture|file photo)s?\b[^)]{0,80}\)\.?$", 120),
    _rule("photo caption", r"\[(?:photo|image|picture)s?\s*/[^\]]{0,60}\]\.?$", 120),
    # A credit closing the caption: "(Xinhua/Li Tao)", "(AP Photo/Jane Doe)", "(Reuters/Ann Lee)"
    _rule(
        "photo caption",
        r"\((?-i:[A-Z])[\w.&' -]{0,30}/\s?(?-i:[A-Z])[\w.'’ -]{1,40}\)\.?$",
        120,
    ),
    _rule("photo caption", r"^(?:file\s+)?(?:photo|image|picture)s?\s*(?::|\||/|-)\s*\S", 80),
    _rule("photo caption", r"^file\s+photo\b", 80),
)

FURNITURE_RULES = (
    _rule(
        "comment prompt",
        r"^(?:please\s+)?(?:enter|leave|post|add|write|submit)\s+(?:your|a)\s+"
        r"(?:comment|name|e-?mail|reply|website|message)",
        12,
    ),
    _rule(
        "comment prompt",
        r"^(?:you must |please )?(?:log ?in|sign ?in|register) to "
        r"(?:post |leave |add |write )?(?:a )?(?:comment|reply)",
        12,
    ),
    _rule(
        "comment prompt",
        r"^(?:\d+\s+)?(?:comments?|leave a (?:comment|reply)|add (?:a )?comment|"
        r"view comments|join the (?:discussion|conversation)|show comments)\W*$",
        6,
    ),
    _rule(
        "cookie banner",
        r"(?:^(?:we|this (?:web)?site|our (?:web)?site) uses? cookies|accept (?:all )?cookies|"
        r"cookie (?:policy|settings|preferences|consent))",
        60,
    ),
    _rule("advertisement", r"^(?:advertisement|advertising|sponsored(?: content)?|ad)\W*$", 3),
    _rule(
        "share prompt",
        r"^(?:share|share this(?: article| story)?|tweet|print|email|e-mail|copy link|"
        r"share on (?:facebook|twitter|x|whatsapp|linkedin))\W*$",
        5,
    ),
    _rule(
        "related links",
        r"^(?:read more|read also|see also|see more|related(?: news| articles| stories| content)?|"
        r"more on this(?: story)?|recommended(?: for you)?|most read|trending now|"
        r"also read|you may also like|don['’]t miss|more from)\b\W*",
        20,
    ),
    # A linked headline tagged in capitals: "Plague fears grow in the region [VIDEO]"
    _rule("related links", r"\[(?-i:[A-Z]{3,})\]\W*$", 25),
    # "Follow our full coverage at https://...", "More news: https://..."
    _rule("related links", r"^(?:follow|more|read|watch|listen|see)\b.{0,150}https?://\S+$", 30),
    _rule(
        "newsletter prompt",
        r"(?:^|[.!?]\s+)(?:subscribe|sign up|register)\b.{0,80}"
        r"\b(?:newsletters?|updates|alerts|briefing)",
        30,
    ),
    _rule("social prompt", r"^follow us\b", 15),
    _rule(
        "contact line",
        r"^(?:email|e-mail|reach|contact|follow)\b.{0,150}?(?:\S+@\S+\.\w|(?:^|\s)@\w{2,})",
        40,
    ),
    _rule("contact line", r"\b(?:may|can) be (?:reached|contacted) at\b", 40),
    _rule(
        "timestamp",
        rf"^(?:last )?(?:updated|published|posted)(?: on| at)?\s*:?\s*(?:\d|{MONTH}\s\d|"
        r"(?:mon|tues|wednes|thurs|fri|satur|sun)day\b)",
        10,
    ),
    _rule("editor credit", r"^(?:editor|editors|edited by|editing by|responsible editor)\s*:", 15),
    _rule("copyright", r"^(?:©|\(c\)\s|copyright\b)", 40),
    _rule("copyright", r"\ball rights reserved\b", 40),
    _rule("wire credit", r"^\(?(?:reporting|additional reporting|writing) by\b.*\)?$", 60),
    _rule("wire credit", r"\bcontributed to this (?:report|story)\.?$", 30),
    _rule("wire credit", r"^our standards\s*:", 30),
)

CLOSES_SENTENCE = re.compile(r"[.!?:;\"'”’)\]。！？；：」』）]$")
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


@dataclass
class Cleaned:
    """What the clean stage stores for one article."""

    text: str
    title: str | None = None
    byline: str | None = None
    dateline_place: str | None = None
    dateline_date: str | None = None
    agency: str | None = None
    site: str | None = None  # a web page's site name: the record's source when none is given
    language: str | None = None
    published: str | None = None
    captions: list[str] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)

    @property
    def word_count(self) -> int:
        return len(self.text.split())


def normalize_agency(name: str) -> str:
    """'Xinhua News Agency' -> 'Xinhua'; an unknown agency keeps its own spelling."""
    name = _tidy(name)
    return AGENCIES.get(name.casefold(), name)


def _tidy(name: str) -> str:
    """A name with its spaces collapsed and no punctuation at its ends."""
    return re.sub(r"\s+", " ", name).strip(" .;,")


def _words(line: str) -> int:
    return len(line.split())


def _key(line: str) -> str:
    return re.sub(r"\W+", " ", line).strip().casefold()


def _is_headline(line: str) -> bool:
    return 1 <= _words(line) <= 25 and not re.search(r"[.,;:。，；：！？]$", line)


def parse_byline(rest: str) -> str | None:
    """The names of a byline, without role or desk: 'Jane Doe and John Roe'."""
    names: list[str] = []
    for part in re.split(r"\s*(?:,|\band\b|&|\|)\s*", rest.strip()):
        part = part.strip(" .")
        if not part:
            continue
        if BYLINE_ROLE.search(part) or not NAME.match(part):
            break
        names.append(part)
    if not names:
        return None
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _html_to_text(html: str) -> tuple[str, dict[str, Any]]:
    import trafilatura

    document = trafilatura.bare_extraction(
        html, with_metadata=True, include_comments=False, favor_precision=True
    )
    text = getattr(document, "text", None) or ""
    if not text.strip():
        raise PermanentError("no article text found in the HTML (only markup, scripts or styles)")
    meta = {key: getattr(document, key, None) for key in ("title", "author", "date", "sitename")}
    return text, meta


class _Cleaner:
    """Walks the lines of one article once, sorting each into body, metadata or furniture."""

    def __init__(self, title: str | None) -> None:
        self.out = Cleaned(text="", title=title.strip() if title else None)
        self.paragraphs: list[str] = []
        self.glue = False  # the last body line was hard wrapped: continue its paragraph

    def remove(self, line: str, reason: str) -> None:
        self.out.removed.append({"text": line, "reason": reason})
        self.glue = False

    def metadata(self, line: str, following: str) -> bool:
        out = self.out
        wrapped = following[:1].islower()  # the line goes on below: not a headline
        if out.title is None and not self.paragraphs and _is_headline(line) and not wrapped:
            out.title = line
            self.remove(line, "title")
            return True
        if out.title and _key(line) == _key(out.title):
            self.remove(line, "duplicate title")
            return True
        if out.byline is None and (match := BYLINE.match(line)) and _words(line) <= 15:
            byline = parse_byline(match["rest"])
            if byline:
                out.byline = byline
                self.remove(line, "byline")
                return True
        if match := SOURCE.match(line):
            out.agency = out.agency or normalize_agency(match["agency"])
            self.remove(line, "source line")
            return True
        return False

    def caption(self, line: str) -> bool:
        # A caption hard wrapped over several lines shows itself by its credit at the end:
        # the lines before it in the same paragraph are part of it.
        wrapped = self.glue and bool(self.paragraphs)
        whole = f"{self.paragraphs[-1]} {line}" if wrapped else line
        words = _words(whole)
        for rule in CAPTION_RULES:
            if words <= rule.max_words and rule.pattern.search(whole):
                if wrapped:
                    self.paragraphs.pop()
                self.out.captions.append(whole)
                self.remove(whole, rule.reason)
                return True
        return False

    def furniture(self, line: str) -> bool:
        if self.caption(line):
            return True
        words = _words(line)
        for rule in FURNITURE_RULES:
            if words <= rule.max_words and rule.pattern.search(line):
                if rule.reason == "wire credit" and "associated press" in line.casefold():
                    self.out.agency = self.out.agency or "AP"
                self.remove(line, rule.reason)
                return True
        return False

    def dateline(self, line: str) -> str:
        opening = AGENCY_OPENING.match(line)
        if opening and opening["agency"].casefold() in AGENCIES:
            self.out.agency = normalize_agency(opening["agency"])
            self.out.removed.append({"text": opening.group(0).strip(), "reason": "agency credit"})
            return line[opening.end() :]
        if chinese := CHINESE_DATELINE.match(line):
            return self.take_dateline(line, chinese, chinese["place"], chinese["agency"])
        match = DATELINE.match(line)
        if (
            not match
            or not match["place"].isupper()
            or not (match["agency"] or match["slashed"] or match["date"] or len(match["place"]) > 2)
        ):
            return line
        place = match["place"].title() + (match["state"] or "")
        rest = self.take_dateline(line, match, place, match["agency"] or match["slashed"])
        after = AGENCY_AFTER.match(rest)
        if after and after["agency"].casefold() in AGENCIES and not self.out.agency:
            self.out.agency = normalize_agency(after["agency"])
            self.out.removed.append({"text": after.group(0).strip(), "reason": "agency credit"})
            rest = rest[after.end() :]
        return rest

    def take_dateline(self, line: str, match: re.Match[str], place: str, agency: str | None) -> str:
        """Move a dateline's place, date and agency to their fields; returns the rest."""
        out = self.out
        out.dateline_place = place
        out.dateline_date = match["date"]
        if agency:
            out.agency = normalize_agency(agency)
        out.removed.append({"text": match.group(0).strip(), "reason": "dateline"})
        return line[match.end() :]

    def body(self, line: str) -> None:
        if not self.paragraphs and self.out.dateline_place is None:
            line = self.dateline(line)
        if self.glue and self.paragraphs:
            self.paragraphs[-1] += " " + line
        else:
            self.paragraphs.append(line)
        self.glue = not CLOSES_SENTENCE.search(line)

    def keep_prose_title(self) -> None:
        """With no body left, a title taken from the text whose first sentence ends inside
        it ("The mayor opened the fair on Monday. Ostrava") was the article itself: it goes
        back to the body (a headline alone stays removed, and the article an error)."""
        taken = [r for r in self.out.removed if r["reason"] == "title"]
        if not self.paragraphs and taken and SENTENCE_INSIDE.search(taken[0]["text"]):
            self.out.removed.remove(taken[0])
            self.paragraphs.append(taken[0]["text"])

    def feed(self, raw: str) -> None:
        lines = [re.sub(r"[ \t\f\v]+", " ", line).strip() for line in raw.split("\n")]
        for i, line in enumerate(lines):
            if not line:
                self.glue = False
                continue
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if not (self.metadata(line, following) or self.furniture(line)):
                self.body(line)


ELEMENT = re.compile(r"<[A-Za-z]")
SENTENCE_INSIDE = re.compile(r"[a-z0-9][.!?。！？]\s+\S")


def clean_article(
    raw: str, *, kind: str = "text", title: str | None = None, max_elements: int | None = None
) -> Cleaned:
    """Clean one article; raises PermanentError when no body text is left, or when the HTML
    has more than `max_elements` elements (parsing it would take gigabytes)."""
    meta: dict[str, Any] = {}
    if kind == "html" and max_elements is not None:
        elements = sum(1 for _ in ELEMENT.finditer(raw))
        if elements > max_elements:
            raise PermanentError(
                f"HTML has {elements:,} elements, over the limit of {max_elements:,} "
                "(NEWSFLOW_MAX_HTML_ELEMENTS, which bounds a worker's memory)"
            )
    raw = unicodedata.normalize("NFC", raw).translate(INVISIBLE).replace("\u00a0", " ")
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    if kind == "html":
        raw, meta = _html_to_text(raw)
        # trafilatura writes one block element (paragraph, heading, list item) per line:
        # each is a paragraph of its own, never a hard-wrapped piece of the next one.
        raw = raw.replace("\n", "\n\n")
    cleaner = _Cleaner(title or meta.get("title"))
    cleaner.feed(raw)
    cleaner.keep_prose_title()
    out = cleaner.out
    out.text = "\n\n".join(cleaner.paragraphs)
    if not out.text.strip():
        raise PermanentError("no body text left after cleaning (the input held only furniture)")
    if out.byline is None and meta.get("author"):
        out.byline = str(meta["author"])
    out.site = _tidy(str(meta.get("sitename") or "")) or None
    if out.agency is None and out.site and out.site.casefold() in AGENCIES:
        out.agency = AGENCIES[out.site.casefold()]  # a blog's name is its source, no agency
    out.published = meta.get("date")
    code, probability = detect_language(out.text)
    out.language = code if probability >= 0.5 else None
    return out
