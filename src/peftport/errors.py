"""Error types. Every error a user can cause is a `PeftportError` with an actionable message.

The CLI prints the message on one line and exits with code 2.
"""


class PeftportError(Exception):
    """Base class for errors caused by user input (files, models, options)."""


class ModuleFormatError(PeftportError):
    """A module directory is missing, unreadable, corrupt or in no known format."""


class ArchitectureError(PeftportError):
    """A model family is unknown, or cannot host the requested module slots."""


class LayerMapError(PeftportError):
    """A layer map is impossible for the given teacher and student."""


class ShapeMismatchError(PeftportError):
    """Tensor or model dimensions do not fit together."""


class OutputExistsError(PeftportError):
    """The output directory exists and overwriting was not requested."""
