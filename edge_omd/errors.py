"""Typed errors of the SDK: everything raised on purpose derives from `EdgeOMDError`.

Catch `EdgeOMDError` to handle any SDK failure; the subclasses say what went wrong.
Input errors also derive from `ValueError` so generic callers keep working.
"""


class EdgeOMDError(Exception):
    """Base class of every error the SDK raises on purpose."""


class InvalidInputError(EdgeOMDError, ValueError):
    """An argument to a verb was malformed (shape, dtype, NaN/inf, range). Nothing was changed."""


class ConfigError(EdgeOMDError, ValueError):
    """A constructor argument or a combination of them is not supported."""


class BudgetError(ConfigError):
    """The memory budget is below the smallest state that can represent the model."""


class StateFormatError(EdgeOMDError, ValueError):
    """A serialised state is corrupt, truncated, of an unknown version, or inconsistent."""


class HeadMismatchError(EdgeOMDError):
    """A reward-model state was learned on another feature head (fingerprint, dim or format differ)."""


class HeadError(EdgeOMDError):
    """A feature-head folder cannot be used (missing or corrupt manifest, graph or tokenizer)."""


class ExportError(EdgeOMDError):
    """A checkpoint cannot be exported (unsupported architecture, missing files, failed parity)."""


class StoreError(EdgeOMDError):
    """A state store cannot read or write a user's state."""


class UserIdError(StoreError, ValueError):
    """A user id is not a string of 1-128 characters from [A-Za-z0-9._@-] starting alphanumeric
    (edge_omd.store.validate_user_id). Nothing was touched."""


class NumericalError(EdgeOMDError, ArithmeticError):
    """An update would have produced a non-finite state; the state was left unchanged."""


class TruncationWarning(UserWarning):
    """A (prompt, response) pair was longer than the feature head's max_length and was cut
    (the start of the prompt first, never the end of the response). Emitted once per call."""
