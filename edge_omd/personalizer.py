"""The assistant-facing SDK: texts in, decisions out, one user's reward model kept in a store.

    >>> head = FeatureHead.open("heads/minilm")                              # doctest: +SKIP
    >>> p = Personalizer(head, SQLiteStore("states.sqlite"), "alice")        # doctest: +SKIP
    >>> a, b = p.pair_to_show(prompt, candidates)      # show both, the user picks one
    >>> p.prefer(prompt, candidates[b], candidates[a]) # persisted before it returns
    >>> p.rank(prompt, candidates)[0].response         # the pessimistic best

The verbs (docs/API.md): learning verbs say what the user did (`thumb`, `prefer`, `pick`),
deciding verbs what the app shows (`score`, `rank`, `pair_to_show`, `queries_to_ask`).

Model (docs/ALGORITHM.md): r(x, a) = theta^T phi(x, a), phi from the frozen FeatureHead; theta and the
local norm cal_H are learned one observation at a time by the RewardModel (Algorithm 1), so the
state has a constant size whatever the number of updates.

The three settings of the paper:
- passive, `rank`: sort by the lower confidence bound r_a - pessimism ||phi_a - ref||_{cal_H^{-1}},
  with ref the candidates' mean feature (Bradley-Terry rewards are defined up to a per-prompt
  constant, so uncertainty is measured relative to the candidates' centre; a candidate unlike
  anything the user has judged is penalised). The paper's pessimism is beta; the default is 0
  (plain reward), which picked the user's favourite more often on the per-user benchmark;
- deployment, `pair_to_show`: which two candidates to show (strategies.STRATEGIES);
- active, `queries_to_ask`: which k pairs of a pool to ask about (greedy max width).

Persistence (edge_omd/store/session.py, docs/JOURNAL_FORMAT.md): every `thumb` / `prefer` /
`pick` is committed to the store before the call returns, as ONE journal record of O(d) bytes
(the observation z as the model learned it, its label, weight and counter). The full state is
written only at checkpoints: at the user's first commit, every `checkpoint_every` records
(default from `default_checkpoint_every`, so that recovering a user takes well under a second),
at `checkpoint()` / `close()` (call them when the app goes idle) and on `import_state`.
Opening a user loads the last checkpoint and replays the journal after it, bit for bit.
Inside `with p.batch():` updates apply to the in-memory model at once and are committed
together when the block exits (also on an exception), or at an explicit `flush()`; until then a
crash loses them, which is the price of batching. A commit first brings the cached model up to
date with what other processes committed (by replaying their new records, not by reloading),
so several processes (or devices syncing through one store) updating the same user never lose
an update.

Features: the Personalizer keeps the features of the answers it embedded last (bounded by
`feature_cache_bytes`, default 4 MiB, least recently used out first), keyed by the head's
fingerprint, the prompt and the response, so `prefer` / `thumb` on answers that `rank` /
`pair_to_show` / `score` just embedded cost no second forward pass (edge_omd/feature_cache.py).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Mapping, NamedTuple, Optional, Sequence

import numpy as np

from edge_omd import _checks, _deprecated
from edge_omd import strategies as _st
from edge_omd.errors import ConfigError, InvalidInputError
from edge_omd.feature_cache import DEFAULT_FEATURE_CACHE_BYTES, FeatureCache
from edge_omd.options import DEFAULT_BUDGET_BYTES, PersonalizerOptions
from edge_omd.population.pack import Pack
from edge_omd.reward_model import RewardModel
from edge_omd.store import Store, validate_user_id
from edge_omd.store.session import Session, default_checkpoint_every

__all__ = ["Personalizer", "PersonalizerOptions", "Ranked", "Query", "default_checkpoint_every",
           "DEFAULT_FEATURE_CACHE_BYTES", "DEFAULT_BUDGET_BYTES"]


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


def _check_learn_text(name, s) -> str:
    s = _checks.text(name, s)
    if not s:
        raise InvalidInputError(f"{name} is empty: nothing to learn from (nothing was committed)")
    return s


class Personalizer:
    """One user's reward model, bound to a FeatureHead and a Store.

    Args:
        head: a FeatureHead (`.dim`, `.fingerprint`, `.features(prompt, responses)`, `.check(model)`).
        store: a `Store` (SQLiteStore, FolderStore).
        user_id: validated by `store.validate_user_id`.
        options: a PersonalizerOptions (edge_omd/options.py: beta, delta, model_options, seed,
            checkpoint_every, feature_cache_bytes, population), or None for the defaults.
        **settings: the same options by name (they replace those of `options`); `prior=` is
            population's older name. A population pack must be fitted on this head.

    Raises HeadMismatchError (stored state from another head or dim), StateFormatError (stored
    state unreadable), UserIdError, ConfigError (a bad option, an unknown one, a pack of another
    head). Nothing is written by the constructor.
    """

    def __init__(self, head, store: Store, user_id: str,
                 options: Optional[PersonalizerOptions] = None, **settings):
        self.user_id = validate_user_id(user_id)
        if not isinstance(store, Store):
            raise ConfigError(f"store must be an edge_omd.store.Store, got {type(store).__name__}")
        for attr in ("dim", "fingerprint", "features", "check"):
            if not hasattr(head, attr):
                raise ConfigError(f"head has no {attr!r}: pass a FeatureHead")
        options = PersonalizerOptions.of(options, settings)
        options.check_head(head)
        pack = options.pack
        #: the validated options (edge_omd/options.py)
        self.options = options
        self.prior, self.population = options.population, pack
        self.head, self.store = head, store
        self._beta, self.delta = options.beta, options.delta
        #: what a new user's RewardModel gets (model_options with the budget and pack defaults)
        self.model_options = options.model_kwargs()
        self._rng = np.random.default_rng(options.seed)
        self._cache = FeatureCache(bytes(head.fingerprint or b""), options.feature_cache_bytes)
        #: the user's committed state as this object keeps it: sync, replay, commit, checkpoint
        self._session = Session(store, self.user_id, head, self._new_model,
                                options.checkpoint_every, None if pack is None else pack.digest)
        if options.model_options or pack is not None:   # fail on bad options now, not later
            self._new_model()
        self._session.refresh()

    # ------------------------------------------------------------------ state and persistence
    def _new_model(self) -> RewardModel:
        try:
            model = RewardModel(int(self.head.dim), population=self.population,
                                **self.model_options)
        except TypeError as exc:   # an unknown keyword (or dim given twice)
            raise ConfigError(f"model_options {sorted(self.model_options)} are not all "
                              f"RewardModel keyword arguments: {exc}") from exc
        self.head.check(model)   # binds the head's fingerprint
        return model

    @property
    def last_commit(self) -> Optional[int]:
        """The counter of the last observation this object committed (its position in the
        user's commit order; other processes' commits are numbered in between), or None."""
        return self._session.last_commit

    @property
    def pack_digest(self) -> Optional[bytes]:
        """The digest of the population pack this user's stored incarnation started from (the
        store record's), or of this Personalizer's pack for a user with no record yet; None
        without a pack."""
        s = self._session
        s.refresh()
        return s.pack_digest if s.cursor is None else s.cursor.pack_digest

    @property
    def checkpoint_every(self) -> int:
        """Journal records between two checkpoints."""
        return self._session.checkpoint_every

    def flush(self) -> int:
        """Commit the pending observations in one transaction; returns how many were committed.

        Inside the transaction the cached model is brought up to date with what other
        processes committed meanwhile (the pending observations are then learned again after
        theirs, in commit order), and one journal record per observation is appended.
        """
        return self._session.flush()

    def checkpoint(self) -> bool:
        """Commit pending observations, then write the full state now if the journal is not
        empty (so the next open replays nothing). Call it when the app goes idle. Returns
        whether a checkpoint was written."""
        return self._session.checkpoint()

    def close(self) -> None:
        """`checkpoint()`; the store stays open (it may serve other users)."""
        self.checkpoint()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def batch(self):
        """Group updates: they apply at once in memory and are committed when the block exits."""
        with self._session.batch():
            yield self

    @property
    def pending(self) -> int:
        """Observations applied in memory but not yet committed (non-zero only inside batch())."""
        return self._session.pending

    @property
    def model(self) -> RewardModel:
        """A copy of the current model (committed state plus pending observations)."""
        return self._session.current().copy()

    @property
    def updates(self) -> int:
        """Committed observations of this user: each thumb / prefer / pick adds one, a
        batch of k adds k. It never goes backwards (an import keeps the larger count); reset()
        restarts it."""
        return self._session.updates

    @property
    def beta(self) -> float:
        """The confidence radius in use (beta_t of the current round for beta='paper')."""
        if self._beta == "paper":
            return _st.paper_beta(int(self.head.dim), int(self._session.current().t),
                                  delta=self.delta)
        return float(self._beta)

    # ------------------------------------------------------------------ learning verbs
    def thumb(self, prompt: str, response: str, up: bool, *,
              shown: Optional[Sequence[str]] = None, weight: float = 1.0) -> None:
        """The user gave a thumb up (up=True) or down to one response; committed before
        returning.

        shown: the OTHER responses displayed with it (1 to 15; entries equal to `response` are
        dropped). The observation is then the response against their mean (docs/ALGORITHM.md,
        "Thumbs relative to what was shown"): P(up) = sigma(r(a) - mean_b r(b)), the
        Bradley-Terry comparison z = phi(x, a) - mean_b phi(x, b), y = up, so a thumb moves
        theta along what distinguishes the answer from its alternatives, not along the prompt
        they share. Without `shown`, the alternatives are the candidates this Personalizer last
        offered for the same prompt, if that list holds `response` (`rank` / `score`: all of
        them, whether displayed or not; `pair_to_show`: the other one of the pair; remembered for
        the last 32 prompts, in memory only): z = phi(x, a) - their mean feature. Otherwise
        z = phi(x, a), y = up, a comparison against a neutral reference of reward 0 (no
        reference kept in the state did better on the per-user benchmark: docs/ALGORITHM.md).
        Empty texts are refused (InvalidInputError, nothing committed).
        """
        _check_learn_text("prompt", prompt)
        _check_learn_text("response", response)
        if not isinstance(up, (bool, np.bool_)):
            raise InvalidInputError(f"up must be a bool, got {type(up).__name__}")
        _checks.weight(weight)   # InvalidInputError now, before any store work
        up = bool(up)
        y = 1.0 if up else 0.0
        if shown is None:
            phi = self._features(prompt, [response])[0]
            ref = self._cache.others_mean(prompt, self._cache.keys(prompt, [response])[0], phi)
            if ref is None:
                def learn(model):
                    model.learn_thumb(phi, up, weight=weight)
                    return [(model._observation.copy(), y, float(weight))]
            else:
                z = phi.astype(np.float64) - ref

                def learn(model):
                    model.learn_one(z, y, weight=weight)
                    return [(model._observation.copy(), y, float(weight))]
        else:
            others = [r for r in _checks.responses(shown, 1) if r != response]
            for i, r in enumerate(others):
                _check_learn_text(f"shown[{i}]", r)
            from edge_omd.solvers.mnl import MAX_K
            if not 1 <= len(others) <= MAX_K - 1:
                raise InvalidInputError(f"shown must hold 1 to {MAX_K - 1} responses other than "
                                        f"`response`, got {len(others)} (nothing was committed)")
            phi = self._features(prompt, [response] + others).astype(np.float64)
            z = phi[0] - phi[1:].mean(axis=0)

            def learn(model):
                model.learn_one(z, y, weight=weight)
                return [(model._observation.copy(), y, float(weight))]
        self._session.observe(learn)

    def prefer(self, prompt: str, chosen: str, rejected: str, *, weight: float = 1.0) -> None:
        """The user preferred `chosen` to `rejected` for `prompt`; committed before returning.

        Bradley-Terry observation z = phi(x, chosen) - phi(x, rejected), y = 1. Empty texts and
        chosen == rejected are refused (InvalidInputError, nothing committed).
        """
        _check_learn_text("prompt", prompt)
        _check_learn_text("chosen", chosen)
        _check_learn_text("rejected", rejected)
        if chosen == rejected:
            raise InvalidInputError("chosen and rejected are the same response: a preference "
                                    "needs two different answers (nothing was committed)")
        _checks.weight(weight)   # InvalidInputError now, before any store work
        phi = self._features(prompt, [chosen, rejected])

        def learn(model):
            model.learn_pair(phi[0], phi[1], weight=weight)
            return [(model._observation.copy(), 1.0, float(weight))]
        self._session.observe(learn)

    def pick(self, prompt: str, responses: Sequence[str], picked: int, *,
             weight: float = 1.0) -> None:
        """The user was shown `responses` (2 to 16) for `prompt` and picked responses[picked]
        (an index); committed before returning.

        One multinomial-logit observation over the candidates (RewardModel.learn_choice,
        docs/ALGORITHM.md "Choice among k"), not k - 1 pairs: it counts once and uses how
        likely each unchosen answer was. Stored as ONE journal record (kind 2: the k feature
        vectors as the model used them, label = the chosen index). Duplicate responses are
        allowed; an empty prompt or response, fewer than 2 or more than 16 responses, or an
        index out of range are refused (InvalidInputError, nothing committed).
        """
        _check_learn_text("prompt", prompt)
        responses = _checks.responses(responses, 2)
        for i, r in enumerate(responses):
            _check_learn_text(f"responses[{i}]", r)
        from edge_omd.solvers.mnl import MAX_K
        if len(responses) > MAX_K:
            raise InvalidInputError(f"a choice holds at most {MAX_K} responses, got "
                                    f"{len(responses)} (nothing was committed)")
        c = _checks.int_in("picked", picked, 0, len(responses) - 1)
        _checks.weight(weight)   # InvalidInputError now, before any store work
        phi = self._features(prompt, responses)

        def learn(model):
            P = model._choice_input(phi)
            model._learn_choice_observation(P, c, weight=weight)
            P.flags.writeable = False
            return [(P, float(c), float(weight))]
        self._session.observe(learn)

    def reset(self) -> None:
        """Forget this user: the stored record is erased and the model is back to theta = 0
        (to the population pack's start with a pack)."""
        self._session.delete()
        self._cache.clear()
        self._session.refresh()

    # ------------------------------------------------------------------ decisions
    def _features(self, prompt: str, responses: list[str]) -> np.ndarray:
        """phi(prompt, a) for each response, (n, d): from the feature cache where it has them,
        one head call for the rest."""
        return self._cache.features(prompt, responses, self._embed, int(self.head.dim))

    def _embed(self, prompt: str, responses: list[str]) -> np.ndarray:
        phi = np.asarray(self.head.features(prompt, responses))
        if phi.shape != (len(responses), int(self.head.dim)):
            raise InvalidInputError(f"the head returned features of shape {phi.shape}, expected "
                                    f"({len(responses)}, {self.head.dim}); nothing was learned")
        return phi

    def score(self, prompt: str, responses: Sequence[str]) -> np.ndarray:
        """Rewards theta^T phi(prompt, a) of each response, (n,) float64."""
        _checks.text("prompt", prompt)
        responses = _checks.responses(responses, 1)
        phi = self._features(prompt, responses)
        model = self._session.current()
        self._cache.offer(prompt, self._cache.keys(prompt, responses), phi)
        return np.asarray(model.reward(phi), np.float64)

    def rank(self, prompt: str, responses: Sequence[str], *,
             pessimism: Optional[float] = None) -> list[Ranked]:
        """Responses best first by r_a - pessimism * ||phi_a - mean_b phi_b||_{cal_H^{-1}}.

        pessimism defaults to strategies.DEFAULT_PESSIMISM = 0 (rank by reward alone: the best
        choice on the per-user benchmark); pass `pessimism=p.beta` for the paper's lower
        confidence bound.
        """
        _checks.text("prompt", prompt)
        responses = _checks.responses(responses, 1)
        if pessimism is None:
            pessimism = _st.DEFAULT_PESSIMISM
        else:
            pessimism = _checks.at_least("pessimism", pessimism, 0.0)
        phi = self._features(prompt, responses)
        model = self._session.current()
        self._cache.offer(prompt, self._cache.keys(prompt, responses), phi)
        r = np.asarray(model.reward(phi), np.float64)
        ref = phi.astype(np.float64).mean(axis=0).astype(phi.dtype)
        w = np.asarray(model.width(phi, ref), np.float64)
        s = _st.pessimistic_scores(r, w, pessimism)
        order = np.lexsort((np.arange(s.size), -s))
        return [Ranked(int(i), responses[i], float(s[i]), float(r[i]), float(w[i])) for i in order]

    def pair_to_show(self, prompt: str, responses: Sequence[str], *, strategy: str = "ucb",
                     q: float = _st.DEFAULT_Q) -> tuple[int, int]:
        """Indices (first, second) of the two responses to show side by side (deployment setting);
        learn the user's answer with `pick(prompt, [responses[first], responses[second]], i)`
        or `prefer`.

        strategy: "ucb" (paper: best, then argmax r + 2 beta ||phi - phi_best||_{cal_H^{-1}}),
        "best_quantile" (best + the ceil(n/q)-th best), "best_second", "best_worst", "random".
        """
        _checks.text("prompt", prompt)
        responses = _checks.responses(responses, 2)
        if not isinstance(strategy, str) or strategy not in _st.STRATEGIES:
            raise InvalidInputError(f"unknown strategy {strategy!r}; choose one of "
                                    f"{', '.join(_st.STRATEGIES)}")
        q = _checks.at_least("q", q, 1.0, allow_inf=True)
        phi = self._features(prompt, responses)
        model = self._session.current()
        r = np.asarray(model.reward(phi), np.float64)
        a, b = _st.choose_pair(r, lambda a: model.width(phi, phi[a]), strategy=strategy,
                               beta=self.beta, q=q, rng=self._rng)
        pair = [responses[a], responses[b]]
        self._cache.offer(prompt, self._cache.keys(prompt, pair), phi[[a, b]])
        return a, b

    def queries_to_ask(self, pool: Sequence[tuple[str, Sequence[str]]], k: int, *,
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
            raise InvalidInputError(f"unknown strategy {strategy!r}; choose 'width' or 'best_worst'")
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
            items.append((_checks.text(f"pool[{n}] prompt", item[0]),
                          _checks.responses(item[1], 2)))
        model = self._session.current()
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

    # ------------------------------------------------------------------ old names (docs/API.md)
    feedback = _deprecated.method("Personalizer", "feedback", "thumb")
    choose = _deprecated.method("Personalizer", "choose", "pick", {"chosen_index": "picked"})
    choose_pair = _deprecated.method("Personalizer", "choose_pair", "pair_to_show")
    select_queries = _deprecated.method("Personalizer", "select_queries", "queries_to_ask")

    # ------------------------------------------------------------------ moving a user
    def export_state(self) -> bytes:
        """This user's committed state as bytes, to `import_state` on another device.

        Pending (batched) observations are committed first. Layout (docs/FORMATS.md, through
        edge_omd/envelope.py): b"EOMDUSR1", u32 header length, header JSON (record_format,
        dim, head fingerprint, update count, time), the RewardModel's own bytes, u32 CRC-32 of
        everything before it.
        """
        return self._session.export_state()

    def import_state(self, blob: bytes) -> None:
        """Replace this user's state by an `export_state` blob (committed before returning).

        Raises StateFormatError (corrupt or foreign blob) or HeadMismatchError (learned on
        another head); in both cases nothing changes. Pending observations are committed first.
        """
        self._session.import_state(blob)

    def migrate_pack(self, old: Optional[Pack]) -> bool:
        """Move this stored user from the pack they learned against (`old`: that Pack, or None
        for a user whose record names no pack) to this Personalizer's `population` (None: no
        pack), in one store transaction: the prior is swapped and the user's own evidence kept
        (edge_omd/population/migrate.py); the record then names the new pack. `HeadRegistry.
        personalizer` calls it for you. Returns False (nothing written) when the user has no
        record or already names this pack; ConfigError (nothing written) when `old` is not the
        pack the record names, or the state cannot move (a sketch state)."""
        from edge_omd.population.migrate import migrate
        if old is not None and not isinstance(old, Pack):
            raise ConfigError(f"old must be the Pack the user learned against (or None), got "
                              f"{type(old).__name__}")
        new = self.population
        want = None if new is None else new.digest
        have = None if old is None else old.digest

        def move(model, digest):
            if digest == want:
                return None
            if digest != have:
                raise ConfigError(
                    f"user {self.user_id!r} learned against the pack "
                    f"{'(none)' if digest is None else digest.hex()[:16] + '...'}, not the "
                    f"{'(none)' if have is None else have.hex()[:16] + '...'} given: pass that "
                    "pack (its file's digest is in the store record) or reset the user")
            return migrate(model, old, new), want
        return self._session.replace(move)

    def to_float64(self, *, budget_bytes=None) -> bool:
        """Convert this stored user's state to float64 in one store transaction, everything
        learned kept (RewardModel.astype): the way out when a float32 user's updates keep
        being refused (NumericalError naming it). budget_bytes: the float64 state's bound
        (None: none). Returns False (nothing written) when the user has no record or is already
        float64."""
        def widen(model, digest):
            if model.dtype == "float64":
                return None
            return model.astype("float64", budget_bytes=budget_bytes), digest
        return self._session.replace(widen)

    def __repr__(self):
        return (f"Personalizer(user_id={self.user_id!r}, store={self.store!r}, "
                f"updates={self.updates}, beta={self._beta!r})")
