"""Error classes at the SDK's front (errors.py): a head that returns features of the wrong shape
is a malformed input to the verb (InvalidInputError), not a state learned on another head
(HeadMismatchError); nothing is learned or stored."""
import numpy as np
import pytest

from edge_omd import Personalizer
from edge_omd.errors import InvalidInputError


class _WrongShapeHead:
    def __init__(self, head):
        self._head = head
        self.dim, self.fingerprint = head.dim, head.fingerprint

    def features(self, prompt, responses):
        return np.zeros((len(responses), self.dim - 1), np.float32)

    def check(self, model):
        self._head.check(model)


def test_wrong_feature_shape_is_invalid_input_and_changes_nothing(head, sqlite_store):
    p = Personalizer(_WrongShapeHead(head), sqlite_store, "u")
    with pytest.raises(InvalidInputError, match="shape"):
        p.thumb("prompt", "an answer", up=True)
    assert p.updates == 0 and p.model.t == 0
