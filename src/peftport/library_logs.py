"""Library log messages peftport causes on purpose (a head it initialises itself, an adapter it activates a
moment later), dropped at the call that causes them; every other message of those libraries still shows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

# logger -> fragments of the messages expected there
ADAPTERS_NOT_ACTIVE = ("adapters.model_mixin", ("none are activated for the forward pass",))
NEW_HEAD_WEIGHTS = ("transformers.modeling_utils", ("were not initialized from the model checkpoint",))


class _Drop(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


@contextmanager
def expected_messages(*expected: tuple[str, tuple[str, ...]]) -> Iterator[None]:
    """Drop, while the block runs, the records of each ``(logger, fragments)`` whose message holds one of the
    fragments (``with expected_messages(NEW_HEAD_WEIGHTS): model = ...from_pretrained(...)``)."""
    installed = [(logging.getLogger(name), _Drop(fragments)) for name, fragments in expected]
    for logger, drop in installed:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger, drop in installed:
            logger.removeFilter(drop)
