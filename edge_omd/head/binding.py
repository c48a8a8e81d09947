"""The one check that a reward-model state may be used with a feature head.

A state learned on one head lives in that head's feature space: its weights mean nothing for
features of another head (another graph, tokenizer, template, dimension, ...). A state records
the head it was learned on as (fingerprint, dim): the 32-byte `FeatureHead.fingerprint`
(edge_omd/head/manifest.py) or None while unbound, and the feature dimension d. Every place
that pairs a state with a head asks `check_binding`; `bind` also binds an unbound model:

    FeatureHead.check(model)        bind(model, head.fingerprint, head.dim)
    RewardModel.bind_head(fp)       check_binding(own fingerprint, d, fp, d), then binds
    StoreRecord.check_head(fp, d)   check_binding(stored fingerprint, stored d, fp, d)
    Personalizer.import_state       check_binding(the blob's fingerprint and d, the head's)

Rules: the dims must be equal; the fingerprints must be equal when both are known (an unbound
state, or a head without a fingerprint, matches any). Standard library + errors.py only.
"""
from __future__ import annotations

import hmac
from typing import Optional

from edge_omd.errors import HeadMismatchError, InvalidInputError

_BYTES = (bytes, bytearray, memoryview)


def _short(fingerprint) -> str:
    if isinstance(fingerprint, _BYTES):
        return bytes(fingerprint).hex()[:16] + "..."
    return repr(fingerprint)[:40]


def check_binding(state_fingerprint: Optional[bytes], state_dim: int,
                  head_fingerprint: Optional[bytes], head_dim: int, *,
                  what: str = "the reward-model state") -> None:
    """Raise HeadMismatchError unless a state (fingerprint or None, dim) may be used with a
    head (fingerprint or None, dim). `what` names the state in the message (e.g. the user)."""
    if int(state_dim) != int(head_dim):
        raise HeadMismatchError(
            f"{what} has dim {int(state_dim)} but the feature head gives dim {int(head_dim)}; "
            "open the head it was learned on, or start a new state")
    if state_fingerprint is None or head_fingerprint is None:
        return
    if not (isinstance(state_fingerprint, _BYTES) and isinstance(head_fingerprint, _BYTES)
            and hmac.compare_digest(bytes(state_fingerprint), bytes(head_fingerprint))):
        raise HeadMismatchError(
            f"{what} was learned on feature head {_short(state_fingerprint)}, not on this head "
            f"{_short(head_fingerprint)}; features from different heads are not comparable: "
            "open the head it was learned on, or start a new state. After a head change (another "
            "pooling, a style block, a new model), keep the old head folder and serve it to its users "
            "with edge_omd.head.HeadRegistry until they reset (README 'Changing the head')")


def bind(model, head_fingerprint: Optional[bytes], head_dim: int) -> None:
    """Refuse a model learned on another head (`check_binding`); bind an unbound one.

    `model` needs attributes `dim` (int) and `head_fingerprint` (bytes or None) and a method
    `bind_head(fingerprint)` (RewardModel has them).
    """
    dim = getattr(model, "dim", None)
    if dim is None or not hasattr(model, "head_fingerprint"):
        raise InvalidInputError("a head checks an object with `dim` and `head_fingerprint` "
                                f"(a RewardModel), got {type(model).__name__}")
    state_fingerprint = model.head_fingerprint
    check_binding(state_fingerprint, dim, head_fingerprint, head_dim)
    if state_fingerprint is None and head_fingerprint is not None:
        model.bind_head(head_fingerprint)
