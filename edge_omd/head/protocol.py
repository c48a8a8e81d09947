"""What the Personalizer needs from a feature head, and `ArrayHead` for features the app computes.

The head protocol (`HeadProtocol`; `FeatureHead` and `ArrayHead` implement it):

    head.dim          int d >= 1, the feature dimension; constant for the head's lifetime
    head.fingerprint  32 bytes identifying the feature map phi: two heads with the same
                      fingerprint must give the same phi(prompt, response) (up to float noise);
                      anything that changes phi (model, weights, layer, pooling, template,
                      normalisation) must change it. A reward-model state is bound to it.
    head.features(prompt, responses) -> np.ndarray float32 of shape (len(responses), d),
                      finite, row i = phi(prompt, responses[i]); deterministic; raises
                      InvalidInputError on bad input (not a str, empty list)
    head.check(model) refuses (HeadMismatchError) a RewardModel learned on another head and
                      binds an unbound one: `edge_omd.head.binding.bind(model, fingerprint, dim)`

The features should be on the scale the learner's defaults were tuned for: L2-normalised rows
(||phi|| = 1; `ArrayHead(normalize=True)`, the default, does it).

`ArrayHead` wraps a function the app already has, e.g. pooled hidden states of the LLM it runs
to write the answers, so no second model is needed on the device:

    >>> def pooled(prompt, responses):                       # doctest: +SKIP
    ...     return np.stack([llm.hidden_states(prompt, r)[-1].mean(0) for r in responses])
    >>> head = ArrayHead(4096, "llama-3.2-3b-instruct-q4/layer-28/response-mean", pooled)
    >>> p = Personalizer(head, SQLiteStore("states.sqlite"), "alice")   # doctest: +SKIP

The fingerprint is SHA-256 over a canonical JSON of (scheme, name, dim, normalize): the app
names its feature map, and MUST change `name` whenever phi changes (another model file,
quantisation, layer, pooling, prompt format), or stored users would silently keep a state from
another feature space. Standard library + numpy only.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from edge_omd.errors import ConfigError, HeadError
from edge_omd import _checks
from edge_omd.head.binding import bind
from edge_omd.head.manifest import canonical_json

ARRAY_HEAD_SCHEME = "edge-omd-array-head/1"


@runtime_checkable
class HeadProtocol(Protocol):
    """The feature head the Personalizer runs on (module docstring)."""

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> bytes: ...

    def features(self, prompt: str, responses: Sequence[str]) -> np.ndarray: ...

    def check(self, model) -> None: ...


def array_head_fingerprint(name: str, dim: int, normalize: bool) -> bytes:
    """The 32-byte fingerprint of `ArrayHead(dim, name, ..., normalize=normalize)`."""
    record = {"scheme": ARRAY_HEAD_SCHEME, "name": name, "dim": int(dim),
              "normalize": bool(normalize)}
    return hashlib.sha256(canonical_json(record)).digest()


class ArrayHead:
    """A head over `fn(prompt, responses) -> (len(responses), dim)` array-like features.

    Args:
        dim: the feature dimension d the function returns.
        name: names the feature map (model, revision, layer, pooling, ...); the fingerprint is
            derived from it (module docstring). Non-empty str, at most 1000 characters.
        fn: the function. Its rows are checked (shape, finite) and converted to float32.
        normalize: L2-normalise every row (default True; a zero row stays zero).
    Raises ConfigError for a bad dim / name / fn; `features` raises InvalidInputError for bad
    input and HeadError when `fn` returns the wrong shape or non-finite values.
    """

    def __init__(self, dim: int, name: str, fn: Callable[[str, list], object], *,
                 normalize: bool = True):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= 1 << 20:
            raise ConfigError(f"dim must be an int in [1, 2^20], got {dim!r}")
        if not isinstance(name, str) or not name.strip() or len(name) > 1000:
            raise ConfigError("name must be a non-empty str (at most 1000 characters) naming the "
                              "feature map, e.g. 'my-llm-q4/layer-20/response-mean'")
        if not callable(fn):
            raise ConfigError(f"fn must be callable (prompt, responses) -> array, got "
                              f"{type(fn).__name__}")
        if not isinstance(normalize, bool):
            raise ConfigError(f"normalize must be a bool, got {normalize!r}")
        self._dim, self.name, self._fn, self.normalize = int(dim), name, fn, normalize
        self._fingerprint = array_head_fingerprint(name, self._dim, normalize)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> bytes:
        return self._fingerprint

    def __repr__(self) -> str:
        return f"ArrayHead({self.name!r}, d={self._dim}, fingerprint {self._fingerprint.hex()[:16]}...)"

    def features(self, prompt: str, responses: Sequence[str]) -> np.ndarray:
        """phi(prompt, a) for each response a: float32 array (len(responses), dim)."""
        _checks.string("prompt", prompt)
        responses = _checks.responses(responses, check=_checks.string)
        phi = np.asarray(self._fn(prompt, responses))
        if phi.shape != (len(responses), self._dim) or not np.issubdtype(phi.dtype, np.number) \
                or np.iscomplexobj(phi):
            raise HeadError(f"head {self.name!r}: the feature function returned "
                            f"{phi.dtype} of shape {phi.shape}, expected real "
                            f"({len(responses)}, {self._dim})")
        phi = phi.astype(np.float64)
        if not np.all(np.isfinite(phi)):
            raise HeadError(f"head {self.name!r}: the feature function returned non-finite values")
        if self.normalize:
            norms = np.linalg.norm(phi, axis=1, keepdims=True)
            phi = phi / np.where(norms > 0, norms, 1.0)
        return phi.astype(np.float32)

    def check(self, model) -> None:
        """Refuse a state learned on another head; bind an unbound one (binding.bind)."""
        bind(model, self._fingerprint, self._dim)
