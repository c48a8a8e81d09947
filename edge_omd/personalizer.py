"""The assistant-facing SDK: texts in, decisions out, one user's reward model kept in a store.

    >>> head = FeatureHead.open("heads/all-minilm-l6-v2-fp32")              # doctest: +SKIP
    >>> p = Personalizer(head, SQLiteStore("states.sqlite"), "alice")        # doctest: +SKIP
    >>> a, b = p.choose_pair(prompt, candidates)       # show both, the user picks one
    >>> p.prefer(prompt, candidates[b], candidates[a]) # persisted before it returns
    >>> p.rank(prompt, candidates)[0].response         # the pessimistic best

Model (ALGORITHM.md): r(x, a) = theta^T phi(x, a), phi from the frozen FeatureHead; theta and the
local norm cal_H are learned one observation at a time by the RewardModel (Algorithm 1), so the
state has a constant size whatever the number of updates.

The three settings of the paper:
- passive, `rank`: sort by the lower confidence bound r_a - beta ||phi_a - ref||_{cal_H^{-1}}, with
  ref the candidates' mean feature (Bradley-Terry rewards are defined up to a per-prompt constant,
  so uncertainty is measured relative to the candidates' centre; a candidate unlike anything the
  user has judged is penalised);
- deployment, `choose_pair`: which two candidates to show (strategies.STRATEGIES);
- active, `select_queries`: which k pairs of a pool to ask about (greedy max width).

Persistence: every `feedback` / `prefer` is committed to the store (one transaction) before the
call returns. Inside `with p.batch():` updates apply to the in-memory model at once and are
committed together when the block exits (also on an exception), or at an explicit `flush()`;
until then a crash loses them, which is the price of batching. A commit always re-reads the
latest stored state inside the transaction and replays the new observations on it, so several
processes (or devices syncing through one store) updating the same user never lose an update,
and a Personalizer whose cached model is stale (another process committed) reloads it.
"""
from __future__ import annotations

import json
import math
import numbers
import struct
import time
import zlib
from contextlib import contextmanager
from typing import Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from edge_omd import strategies as _st
from edge_omd.errors import (ConfigError, HeadMismatchError, InvalidInputError,
                             StateFormatError)
from edge_omd.reward_model import RewardModel
try:   # the model's own weight rule (range included), checked early: no store work on bad input
    from edge_omd.reward_model import _weight as _check_weight
except ImportError:  # pragma: no cover - the model validates the weight again when learning
    def _check_weight(w):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
            raise InvalidInputError(f"weight must be a real number, got {type(w).__name__}")
        return w
from edge_omd.store import RECORD_FORMAT, Store, StoreRecord, validate_user_id

__all__ = ["Personalizer", "Ranked", "Query"]

_EXPORT_MAGIC = b"EOMDUSR1"


class Ranked(NamedTuple):
    """One ranked candidate (best first)."""
    index: int        # position in the `responses` given
    response: str
    score: float      # reward - pessimism * width (what the ranking sorts by)
    reward: float     # theta^T phi
    width: float      # ||phi - mean candidate phi||_{cal_H^{-1}}


class Query(NamedTuple):
    """One pair to ask the user about: pool[item], responses `first` vs `second`."""
    item: int
    first: int
    second: int
    width: float      # ||phi_first - phi_second||_{cal_H^{-1}} when it was picked


def _check_text(name, s) -> str:
    if not isinstance(s, str):
        raise InvalidInputError(f"{name} must be a str, got {type(s).__name__}")
    return s


def _check_real(name, x, error, *, lo: float = 0.0, allow_inf: bool = False) -> float:
    """`x` as a float if it is a real number (not a bool) >= lo, finite unless allow_inf."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise error(f"{name} must be a real number, got {type(x).__name__}")
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError) as exc:
        raise error(f"{name} must be a real number, got {x!r}") from exc
    if math.isnan(v) or (math.isinf(v) and not allow_inf) or not v >= lo:
        raise error(f"{name} must be a {'' if allow_inf else 'finite '}number >= {lo:g}, "
                    f"got {x!r}")
    return v


def _check_responses(responses, at_least: int) -> list[str]:
    if isinstance(responses, str) or not isinstance(responses, Sequence):
        raise InvalidInputError("responses must be a list of str (not a single str)")
    out = [_check_text(f"responses[{i}]", r) for i, r in enumerate(responses)]
    if len(out) < at_least:
        raise InvalidInputError(f"need at least {at_least} responses, got {len(out)}")
    return out


class Personalizer:
    """One user's reward model, bound to a FeatureHead and a Store.

    Args:
        head: a FeatureHead (`.dim`, `.fingerprint`, `.features(prompt, responses)`, `.check(model)`).
        store: a `Store` (SQLiteStore, FolderStore).
        user_id: validated by `store.validate_user_id`.
        beta: confidence radius used by `rank` (pessimism) and `choose_pair("ucb")`; a float >= 0
            (default 1.0, see strategies.DEFAULT_BETA) or "paper" for beta_t = sqrt(d) log((t+1)/delta).
        delta: the failure probability of beta="paper".
        model_options: keyword arguments of `RewardModel(head.dim, ...)` for a NEW user; a stored
            user keeps the hyperparameters it was created with.
        seed: seeds the "random" strategy.

    Raises HeadMismatchError (stored state from another head or dim), StateFormatError (stored
    state unreadable), UserIdError, ConfigError. Nothing is written by the constructor.
    """

    def __init__(self, head, store: Store, user_id: str, *, beta: Union[float, str] = _st.DEFAULT_BETA,
                 delta: float = 0.05, model_options: Optional[dict] = None,
                 seed: Optional[int] = None):
        self.user_id = validate_user_id(user_id)
        if not isinstance(store, Store):
            raise ConfigError(f"store must be an edge_omd.store.Store, got {type(store).__name__}")
        for attr in ("dim", "fingerprint", "features", "check"):
            if not hasattr(head, attr):
                raise ConfigError(f"head has no {attr!r}: pass a FeatureHead")
        delta = _check_real("delta", delta, ConfigError)
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"delta must be in (0, 1), got {delta!r}")
        if isinstance(beta, str):
            if beta != "paper":
                raise ConfigError(f"beta must be a float >= 0 or 'paper', got {beta!r}")
            _st.paper_beta(int(head.dim), 0, delta=delta)  # validates delta
        else:
            try:
                beta = _check_real("beta", beta, ConfigError)
            except ConfigError:
                raise ConfigError(f"beta must be a finite float >= 0 or 'paper', "
                                  f"got {beta!r}") from None
        if model_options is None:
            model_options = {}
        if not isinstance(model_options, Mapping):
            raise ConfigError(f"model_options must be a dict of RewardModel keyword arguments, "
                              f"got {type(model_options).__name__}")
        if not all(isinstance(k, str) for k in model_options):
            raise ConfigError("model_options keys must be str (RewardModel keyword arguments)")
        try:
            rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"seed must be None or a non-negative int, got {seed!r}") from exc
        self.head, self.store = head, store
        self._beta, self.delta = beta, delta
        self.model_options = dict(model_options)
        self._rng = rng
        self._base: Optional[RewardModel] = None   # the model as committed at version self._seen
        self._seen = None                           # store.version() token of _base
        self._pending: list[tuple] = []             # observations not yet committed (batch mode)
        self._model: Optional[RewardModel] = None   # _base + pending: what decisions use
        self._batch_depth = 0
        if self.model_options:   # fail on bad options now, not at the first update
            self._new_model()
        self._refresh()

    # ------------------------------------------------------------------ state and persistence
    def _new_model(self) -> RewardModel:
        try:
            model = RewardModel(int(self.head.dim), **self.model_options)
        except TypeError as exc:   # an unknown keyword (or dim given twice)
            raise ConfigError(f"model_options {sorted(self.model_options)} are not all "
                              f"RewardModel keyword arguments: {exc}") from exc
        self.head.check(model)   # binds the head's fingerprint
        return model

    def _load(self, rec: Optional[StoreRecord]) -> RewardModel:
        if rec is None:
            return self._new_model()
        rec.check_head(self.head.fingerprint, int(self.head.dim))
        try:
            model = RewardModel.from_bytes(rec.state)
        except StateFormatError as exc:
            raise StateFormatError(
                f"user {rec.user_id!r}: the stored state cannot be read ({exc}); restore it with "
                f"an edge-omd version that wrote it, or erase it with store.delete("
                f"{rec.user_id!r}) and start again") from exc
        self.head.check(model)   # HeadMismatchError if the blob's own dim/fingerprint differ
        return model

    def _refresh(self) -> None:
        token = self.store.version(self.user_id)
        if self._base is not None and token == self._seen:
            return
        rec = self.store.get(self.user_id)
        self._base = self._load(rec)
        self._seen = None if rec is None else (rec.updates, rec.created_at)
        self._model = self._replay(self._base)

    def _replay(self, base: RewardModel) -> RewardModel:
        if not self._pending:
            return base
        model = base.copy()
        for obs in self._pending:
            self._apply(model, obs)
        return model

    @staticmethod
    def _apply(model: RewardModel, obs: tuple) -> None:
        kind = obs[0]
        if kind == "pair":
            model.learn_pair(obs[1], obs[2], weight=obs[3])
        else:
            model.learn_thumb(obs[1], obs[2], weight=obs[3])

    def _observe(self, obs: tuple) -> None:
        if self._batch_depth == 0:
            # Learned inside the store's transaction (flush), on the latest stored state; if the
            # model rejects the observation the transaction rolls back and nothing changes.
            self._pending.append(obs)
            try:
                self.flush()
            except BaseException:
                self._pending.pop()
                raise
            return
        # Batch mode: learn in memory now. The RewardModel leaves itself unchanged on bad
        # input, and _model is never _base here, so a rejected observation changes nothing.
        self._refresh()
        if self._model is self._base:
            self._model = self._base.copy()
        self._apply(self._model, obs)
        self._pending.append(obs)

    def flush(self) -> int:
        """Commit the pending observations in one transaction; returns how many were committed.

        Inside the transaction the latest stored state is read (another process may have moved
        it), the pending observations are replayed on it, and the result is written.
        """
        if not self._pending:
            return 0
        pending = list(self._pending)
        built = {}

        def build(old: Optional[StoreRecord]) -> bytes:
            token = None if old is None else (old.updates, old.created_at)
            if token == self._seen and self._base is not None:
                # Learn on the cached committed model in place (no d x d copy on the hot path);
                # if the transaction fails it is dropped below and reloaded from the store.
                model = self._base
            else:
                model = self._load(old)
            built["model"] = model
            for obs in pending:
                self._apply(model, obs)
            return model.to_bytes()

        try:
            rec = self.store.update(self.user_id, build, head_fingerprint=self.head.fingerprint,
                                    dim=int(self.head.dim))
        except BaseException:
            if built.get("model") is self._base:   # possibly half-learned: forget the cache
                if self._model is self._base:
                    self._model = None
                self._base, self._seen = None, None   # the next call reloads the stored state
            raise
        self._base = built["model"]
        self._seen = (rec.updates, rec.created_at)
        self._pending = []
        self._model = self._base
        return len(pending)

    @contextmanager
    def batch(self):
        """Group updates: they apply at once in memory and are committed when the block exits."""
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self.flush()

    @property
    def pending(self) -> int:
        """Observations applied in memory but not yet committed (non-zero only inside batch())."""
        return len(self._pending)

    @property
    def model(self) -> RewardModel:
        """A copy of the current model (committed state plus pending observations)."""
        self._refresh()
        return self._model.copy()

    @property
    def updates(self) -> int:
        """Committed updates of this user (the store's counter)."""
        self._refresh()
        return 0 if self._seen is None else self._seen[0]

    @property
    def beta(self) -> float:
        """The confidence radius in use (beta_t of the current round for beta='paper')."""
        if self._beta == "paper":
            self._refresh()
            return _st.paper_beta(int(self.head.dim), int(self._model.t), delta=self.delta)
        return float(self._beta)

    # ------------------------------------------------------------------ learning verbs
    def feedback(self, prompt: str, response: str, up: bool, *, weight: float = 1.0) -> None:
        """Thumbs up (up=True) or down on one response; committed before returning.

        The GLM observation (z = phi(x, a), y = 1 if up else 0): a comparison against a neutral
        reference.
        """
        _check_text("prompt", prompt)
        _check_text("response", response)
        if not isinstance(up, (bool, np.bool_)):
            raise InvalidInputError(f"up must be a bool, got {type(up).__name__}")
        _check_weight(weight)   # InvalidInputError now, before any store work
        phi = self._features(prompt, [response])[0]
        # The weight is passed on unchanged: the RewardModel validates it again when learning.
        self._observe(("thumb", phi, bool(up), weight))

    def prefer(self, prompt: str, chosen: str, rejected: str, *, weight: float = 1.0) -> None:
        """The user preferred `chosen` to `rejected` for `prompt`; committed before returning.

        Bradley-Terry observation z = phi(x, chosen) - phi(x, rejected), y = 1.
        """
        _check_text("prompt", prompt)
        _check_text("chosen", chosen)
        _check_text("rejected", rejected)
        _check_weight(weight)   # InvalidInputError now, before any store work
        phi = self._features(prompt, [chosen, rejected])
        self._observe(("pair", phi[0], phi[1], weight))

    def reset(self) -> None:
        """Forget this user: the stored record is erased and the model is back to theta = 0."""
        self._pending = []
        self.store.delete(self.user_id)
        self._base, self._seen = None, None
        self._refresh()

    # ------------------------------------------------------------------ decisions
    def _features(self, prompt: str, responses: list[str]) -> np.ndarray:
        phi = np.asarray(self.head.features(prompt, responses))
        if phi.shape != (len(responses), int(self.head.dim)):
            raise HeadMismatchError(f"the head returned features of shape {phi.shape}, expected "
                                    f"({len(responses)}, {self.head.dim})")
        return phi

    def score(self, prompt: str, responses: Sequence[str]) -> np.ndarray:
        """Rewards theta^T phi(prompt, a) of each response, (n,) float64."""
        _check_text("prompt", prompt)
        responses = _check_responses(responses, 1)
        phi = self._features(prompt, responses)
        self._refresh()
        return np.asarray(self._model.reward(phi), np.float64)

    def rank(self, prompt: str, responses: Sequence[str], *,
             pessimism: Optional[float] = None) -> list[Ranked]:
        """Responses best first by r_a - pessimism * ||phi_a - mean_b phi_b||_{cal_H^{-1}}.

        pessimism defaults to `beta`; 0 ranks by reward alone.
        """
        _check_text("prompt", prompt)
        responses = _check_responses(responses, 1)
        if pessimism is None:
            pessimism = self.beta
        else:
            pessimism = _check_real("pessimism", pessimism, InvalidInputError)
        phi = self._features(prompt, responses)
        self._refresh()
        r = np.asarray(self._model.reward(phi), np.float64)
        ref = phi.astype(np.float64).mean(axis=0).astype(phi.dtype)
        w = np.asarray(self._model.width(phi, ref), np.float64)
        s = _st.pessimistic_scores(r, w, pessimism)
        order = np.lexsort((np.arange(s.size), -s))
        return [Ranked(int(i), responses[i], float(s[i]), float(r[i]), float(w[i])) for i in order]

    def choose_pair(self, prompt: str, responses: Sequence[str], *, strategy: str = "ucb",
                    q: float = _st.DEFAULT_Q) -> tuple[int, int]:
        """Indices (first, second) of the two responses to show side by side (deployment setting).

        strategy: "ucb" (paper: best, then argmax r + 2 beta ||phi - phi_best||_{cal_H^{-1}}),
        "best_quantile" (best + the ceil(n/q)-th best), "best_second", "best_worst", "random".
        """
        _check_text("prompt", prompt)
        responses = _check_responses(responses, 2)
        if not isinstance(strategy, str) or strategy not in _st.STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r}; choose one of "
                              f"{', '.join(_st.STRATEGIES)}")
        q = _check_real("q", q, ConfigError, lo=1.0, allow_inf=True)
        phi = self._features(prompt, responses)
        self._refresh()
        model = self._model
        r = np.asarray(model.reward(phi), np.float64)
        return _st.choose_pair(r, lambda a: model.width(phi, phi[a]), strategy=strategy,
                               beta=self.beta, q=q, rng=self._rng)

    def select_queries(self, pool: Sequence[tuple[str, Sequence[str]]], k: int, *,
                       strategy: str = "width") -> list[Query]:
        """The k most informative pairs of `pool` to ask the user about (active setting).

        pool: [(prompt, [response, ...]), ...]; the candidates are pairs within one item.
        strategy:
          "width": every pair (a, a') of every item; greedy argmax ||phi_a - phi_a'||_{cal_H^{-1}}
                   with cal_H updated after each pick as if it had been labelled, so the k are
                   not redundant (strategies.greedy_queries);
          "best_worst": the paper's practical rule, one pair per item, its reward-best vs its
                   reward-worst response; the k items are then picked by the same greedy width.
        Nothing is learned; answer the queries with `prefer`.
        """
        if not isinstance(strategy, str) or strategy not in ("width", "best_worst"):
            raise ConfigError(f"unknown strategy {strategy!r}; choose 'width' or 'best_worst'")
        if isinstance(k, (bool, np.bool_)) or not (isinstance(k, (int, np.integer)) and k >= 0):
            raise InvalidInputError(f"k must be an int >= 0, got {k!r}")
        if isinstance(pool, (str, bytes, bytearray, Mapping)):
            raise InvalidInputError(f"pool must be a list of (prompt, [responses]), got "
                                    f"{type(pool).__name__}")
        try:
            pool = iter(pool)
        except TypeError:
            raise InvalidInputError(f"pool must be a list of (prompt, [responses]), got "
                                    f"{type(pool).__name__}") from None
        items = []
        for n, item in enumerate(pool):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise InvalidInputError(f"pool[{n}] must be (prompt, [responses])")
            items.append((_check_text(f"pool[{n}] prompt", item[0]),
                          _check_responses(item[1], 2)))
        self._refresh()
        model = self._model
        cand, rows = [], []
        for n, (prompt, responses) in enumerate(items):
            phi = self._features(prompt, responses).astype(np.float64)
            if strategy == "best_worst":
                r = np.asarray(model.reward(phi), np.float64)
                a, b = _st.choose_pair(r, None, strategy="best_worst")
                pairs = [(a, b)]
            else:
                m = len(responses)
                pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
            for a, b in pairs:
                cand.append((n, a, b))
                rows.append(phi[a] - phi[b])
        if not rows:
            return []
        Z = np.asarray(rows, dtype=np.dtype(model.dtype))
        picked = _st.greedy_queries(model, Z, int(k))
        return [Query(cand[j][0], cand[j][1], cand[j][2], w) for j, w in picked]

    # ------------------------------------------------------------------ moving a user
    def export_state(self) -> bytes:
        """This user's committed state as bytes, to `import_state` on another device.

        Pending (batched) observations are committed first. Layout: b"EOMDUSR1", u32 header
        length, header JSON (dim, head fingerprint, update count, time), the RewardModel's own
        bytes, u32 CRC-32 of everything before it.
        """
        self.flush()
        self._refresh()
        header = json.dumps({
            "record_format": RECORD_FORMAT, "dim": int(self.head.dim),
            "head_fingerprint": bytes(self.head.fingerprint).hex(),
            "updates": 0 if self._seen is None else self._seen[0], "exported_at": time.time(),
        }).encode("utf-8")
        body = _EXPORT_MAGIC + struct.pack("<I", len(header)) + header + self._base.to_bytes()
        return body + struct.pack("<I", zlib.crc32(body))

    def import_state(self, blob: bytes) -> None:
        """Replace this user's state by an `export_state` blob (committed before returning).

        Raises StateFormatError (corrupt or foreign blob) or HeadMismatchError (learned on
        another head); in both cases nothing changes. Pending observations are committed first.
        """
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"blob must be bytes, got {type(blob).__name__}")
        blob = bytes(blob)
        if len(blob) < len(_EXPORT_MAGIC) + 8 or not blob.startswith(_EXPORT_MAGIC):
            raise StateFormatError("not an edge-omd user export (bad magic); pass the bytes "
                                   "export_state() returned")
        (crc,) = struct.unpack("<I", blob[-4:])
        if zlib.crc32(blob[:-4]) != crc:
            raise StateFormatError("the user export is corrupt (checksum mismatch); export again")
        start = len(_EXPORT_MAGIC) + 4
        (hlen,) = struct.unpack("<I", blob[len(_EXPORT_MAGIC):start])
        try:
            h = json.loads(blob[start:start + hlen].decode("utf-8"))
            if not isinstance(h, dict):
                raise TypeError(f"a JSON object was expected, got {type(h).__name__}")
            fp = h["head_fingerprint"]
            if not isinstance(fp, str):
                raise TypeError("head_fingerprint is not a hex string")
            ints = {}
            for key in ("dim", "record_format"):
                v = h[key]
                if isinstance(v, bool) or not isinstance(v, int):
                    raise TypeError(f"{key} is not an integer: {v!r:.40}")
                ints[key] = v
            rec = StoreRecord(self.user_id, bytes.fromhex(fp), ints["dim"],
                              ints["record_format"], blob[start + hlen:-4], 0, 0.0, 0.0)
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise StateFormatError(f"the user export's header is corrupt: "
                                   f"{str(exc)[:200]}") from exc
        model = self._load(rec)       # all checks before anything is written
        self.flush()
        state = model.to_bytes()
        rec = self.store.update(self.user_id, lambda old: state,
                                head_fingerprint=self.head.fingerprint, dim=int(self.head.dim))
        self._base, self._seen = model, (rec.updates, rec.created_at)
        self._model = model

    def __repr__(self):
        return (f"Personalizer(user_id={self.user_id!r}, store={self.store!r}, "
                f"updates={self.updates}, beta={self._beta!r})")
