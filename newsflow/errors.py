"""The error hierarchy: what is permanent (bad input, bad config) and what is worth a retry."""


class NewsflowError(Exception):
    """Base class of every error newsflow raises on purpose."""


class ConfigurationError(NewsflowError):
    """Raised when a setting is missing or wrong; the message says which and how to fix it."""


class NotFound(NewsflowError):
    """Raised when a batch or article asked for does not exist; the message names it."""


class ServiceUnavailable(NewsflowError):
    """Raised when the broker or database cannot be reached; the message names the URL."""


class PermanentError(NewsflowError):
    """Raised when an article cannot be processed as it is: no retry, reason stored."""
