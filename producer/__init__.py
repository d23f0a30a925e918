"""The producer side: submit batches, watch the queues, read results (no spaCy needed)."""

from producer.client import Client

__all__ = ["Client"]
