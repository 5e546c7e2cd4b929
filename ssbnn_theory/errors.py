"""The one exception type for invalid input, shared by the whole toolkit."""

from __future__ import annotations

__all__ = ["InvalidParameterError"]


class InvalidParameterError(ValueError):
    """A parameter is outside its allowed range.

    The message names the field, the allowed range and the value received, as
    ``"<field>: must be <allowed> (got <value>)"``, so that the command-line
    tools can print it as one line. Subclasses ``ValueError`` so callers that
    catch ``ValueError`` keep working.

    Parameters
    ----------
    field
        Name of the offending field as the user wrote it (``"active[2]"``,
        ``"sigma_e"``, ``"design.p"``).
    allowed
        The allowed range in words (``"an integer in [1, hidden[2]] = [1, 16]"``).
    value
        The value received.
    """

    def __init__(self, field: str, allowed: str, value: object) -> None:
        self.field = field
        self.allowed = allowed
        self.value = value
        super().__init__(f"{field}: must be {allowed} (got {value!r})")
