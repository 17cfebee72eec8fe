"""Library log messages peftport causes on purpose (a head it initialises itself, an adapter it activates a
moment later), dropped at the call that causes them; every other message of those libraries still shows."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Expected:
    """A message expected from ``logger``: it holds ``fragment`` and, where ``keys`` is given, every quoted
    weight name it lists matches ``keys`` (so a missing encoder weight is still reported)."""

    logger: str
    fragment: str
    keys: str | None = None

    def matches(self, message: str) -> bool:
        """Whether ``message`` is this expected one."""
        if self.fragment not in message:
            return False
        listed = re.findall(r"'([^']+)'", message.split(":", 1)[-1])
        return self.keys is None or bool(listed) and all(re.match(self.keys, key) for key in listed)


ADAPTERS_NOT_ACTIVE = Expected("adapters.model_mixin", "none are activated for the forward pass")
# the task head (and a pooler the L3 zoo student lacks) that peftport initialises and then trains or moves
NEW_HEAD_WEIGHTS = Expected(
    "transformers.modeling_utils",
    "were not initialized from the model checkpoint",
    r"^(?:\w+\.)?(?:classifier|pre_classifier|score|qa_outputs|pooler)\b",
)


class _Drop(logging.Filter):
    def __init__(self, expected: Expected) -> None:
        super().__init__()
        self.expected = expected

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.expected.matches(record.getMessage())


@contextmanager
def expected_messages(*expected: Expected) -> Iterator[None]:
    """Drop, while the block runs, the log records that are one of ``expected``
    (``with expected_messages(NEW_HEAD_WEIGHTS): model = ...from_pretrained(...)``)."""
    installed = [(logging.getLogger(e.logger), _Drop(e)) for e in expected]
    for logger, drop in installed:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger, drop in installed:
            logger.removeFilter(drop)
