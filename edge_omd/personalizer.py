"""The assistant-facing SDK: texts in, decisions out, one user's reward model kept in a store.

    >>> head = FeatureHead.open("heads/minilm")                              # doctest: +SKIP
    >>> p = Personalizer(head, SQLiteStore("states.sqlite"), "alice")        # doctest: +SKIP
    >>> a, b = p.choose_pair(prompt, candidates)       # show both, the user picks one
    >>> p.prefer(prompt, candidates[b], candidates[a]) # persisted before it returns
    >>> p.rank(prompt, candidates)[0].response         # the pessimistic best

Model (docs/ALGORITHM.md): r(x, a) = theta^T phi(x, a), phi from the frozen FeatureHead; theta and the
local norm cal_H are learned one observation at a time by the RewardModel (Algorithm 1), so the
state has a constant size whatever the number of updates.

The three settings of the paper:
- passive, `rank`: sort by the lower confidence bound r_a - pessimism ||phi_a - ref||_{cal_H^{-1}},
  with ref the candidates' mean feature (Bradley-Terry rewards are defined up to a per-prompt
  constant, so uncertainty is measured relative to the candidates' centre; a candidate unlike
  anything the user has judged is penalised). The paper's pessimism is beta; the default is 0
  (plain reward), which picked the user's favourite more often on the per-user benchmark;
- deployment, `choose_pair`: which two candidates to show (strategies.STRATEGIES);
- active, `select_queries`: which k pairs of a pool to ask about (greedy max width).

Persistence (edge_omd/store/session.py, docs/JOURNAL_FORMAT.md): every `feedback` / `prefer` / `choose` is
committed to the store before the call returns, as ONE journal record of O(d) bytes (the
observation z as the model learned it, its label, weight and counter). The full state is
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
fingerprint, the prompt and the response, so `prefer` / `feedback` on answers that `rank` /
`choose_pair` / `score` just embedded cost no second forward pass (edge_omd/feature_cache.py).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from edge_omd import _checks
from edge_omd import strategies as _st
from edge_omd.errors import ConfigError, InvalidInputError
from edge_omd.feature_cache import DEFAULT_FEATURE_CACHE_BYTES, FeatureCache
from edge_omd.population.pack import Pack
from edge_omd.prior import Prior
from edge_omd.reward_model import RewardModel
from edge_omd.store import Store, validate_user_id
from edge_omd.store.session import Session, default_checkpoint_every

__all__ = ["Personalizer", "Ranked", "Query", "default_checkpoint_every",
           "DEFAULT_FEATURE_CACHE_BYTES"]

#: A new user's state budget unless model_options says otherwise: the exact model up to
#: d = 1448 (every head below that keeps it), a robust-FD sketch of rank ~186 at d = 4096
#: (Llama-3-8B), within 0.2 accuracy points of the 64 MiB exact state on power-law features
#: (`python -m edge_omd_bench.budget`). `model_options={"budget_bytes": None}` gives exact.
DEFAULT_BUDGET_BYTES = 8 << 20


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
        beta: confidence radius of `choose_pair("ucb")` (rank's pessimism is separate); a float >= 0
            (default 1.0, see strategies.DEFAULT_BETA) or "paper" for beta_t = sqrt(d) log((t+1)/delta).
        delta: the failure probability of beta="paper".
        model_options: keyword arguments of `RewardModel(head.dim, ...)` for a NEW user; a stored
            user keeps the hyperparameters it was created with. `budget_bytes` defaults to
            DEFAULT_BUDGET_BYTES (8 MiB: exact up to d = 1448, a sketch above) unless a solver
            is named; `{"budget_bytes": None}` or `{"solver": "exact"}` gives exact at any d.
        seed: seeds the "random" strategy.
        checkpoint_every: journal records between two checkpoints (None: the default for the
            model's shape, `default_checkpoint_every`; the journal is also checkpointed at
            `checkpoint()` / `close()`).
        feature_cache_bytes: bound of the feature cache (0 disables it).
        population: a population pack (edge_omd.population.Pack, e.g. `Pack.load(path)` of an
            `edge-omd population fit` file; a Prior is taken as `Pack.from_prior`) fitted on
            this head: a NEW user (and `reset`) starts at it, theta = theta_pop, cal_H =
            cal_H_0, and its record keeps the pack's digest (`pack_digest`); a stored user keeps
            its state. Its dim and fingerprint must be the head's (ConfigError otherwise); the
            model's lam is the pack's (model_options may not set another). Without one the SDK
            behaves as without a pack (theta = 0, cal_H = lam I).
        prior: the same argument under its older name (a Prior or a Pack); give one of the two.

    Raises HeadMismatchError (stored state from another head or dim), StateFormatError (stored
    state unreadable), UserIdError, ConfigError. Nothing is written by the constructor.
    """

    def __init__(self, head, store: Store, user_id: str, *, beta: Union[float, str] = _st.DEFAULT_BETA,
                 delta: float = 0.05, model_options: Optional[dict] = None,
                 seed: Optional[int] = None, checkpoint_every: Optional[int] = None,
                 feature_cache_bytes: int = DEFAULT_FEATURE_CACHE_BYTES,
                 population: Optional[Pack] = None, prior: Optional[Prior] = None):
        self.user_id = validate_user_id(user_id)
        if not isinstance(store, Store):
            raise ConfigError(f"store must be an edge_omd.store.Store, got {type(store).__name__}")
        for attr in ("dim", "fingerprint", "features", "check"):
            if not hasattr(head, attr):
                raise ConfigError(f"head has no {attr!r}: pass a FeatureHead")
        delta = _checks.at_least("delta", delta, 0.0, ConfigError)
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"delta must be in (0, 1), got {delta!r}")
        if isinstance(beta, str):
            if beta != "paper":
                raise ConfigError(f"beta must be a float >= 0 or 'paper', got {beta!r}")
            _st.paper_beta(int(head.dim), 0, delta=delta)  # validates delta
        else:
            try:
                beta = _checks.at_least("beta", beta, 0.0, ConfigError)
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
        for name, v, lo in (("checkpoint_every", checkpoint_every, 1),
                            ("feature_cache_bytes", feature_cache_bytes, 0)):
            if v is None and name == "checkpoint_every":
                continue
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"{name} must be an int >= {lo}, got {v!r}")
        if population is not None and prior is not None:
            raise ConfigError("give the population pack once: population= (prior= is its older "
                              "name)")
        given = population if population is not None else prior
        pack = None
        if given is not None:
            if not isinstance(given, (Pack, Prior)):
                raise ConfigError(f"population must be an edge_omd.population.Pack, got "
                                  f"{type(given).__name__}")
            pack = given if isinstance(given, Pack) else Pack.from_prior(given)
            head_fp = None if head.fingerprint is None else bytes(head.fingerprint)
            if pack.dim != int(head.dim) or pack.fingerprint != head_fp:
                raise ConfigError(
                    f"the population pack was fitted on another head (dim {pack.dim}, "
                    f"fingerprint "
                    f"{'none' if pack.fingerprint is None else pack.fingerprint.hex()[:16]}) "
                    f"than this one (dim {int(head.dim)}, fingerprint "
                    f"{'none' if head_fp is None else head_fp.hex()[:16]}); fit one on this "
                    "head: edge-omd population fit FEEDBACK OUT --head HEAD")
        if "prior" in model_options or "population" in model_options:
            raise ConfigError("pass the population pack as Personalizer(..., population=), not "
                              "in model_options")
        self.prior, self.population = given, pack
        self.head, self.store = head, store
        self._beta, self.delta = beta, delta
        self.model_options = dict(model_options)
        if "budget_bytes" not in model_options and model_options.get("solver", "auto") == "auto":
            self.model_options["budget_bytes"] = DEFAULT_BUDGET_BYTES
        if pack is not None and "lam" not in model_options:
            self.model_options["lam"] = pack.lam     # the pack's precisions include its lam
        self._rng = rng
        self._cache = FeatureCache(bytes(head.fingerprint or b""), int(feature_cache_bytes))
        #: the user's committed state as this object keeps it: sync, replay, commit, checkpoint
        self._session = Session(store, self.user_id, head, self._new_model, checkpoint_every,
                                None if pack is None else pack.digest)
        if model_options or pack is not None:   # fail on bad options now, not at the first update
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
        """Committed observations of this user: each feedback / prefer / choose adds one, a
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
    def feedback(self, prompt: str, response: str, up: bool, *,
                 shown: Optional[Sequence[str]] = None, weight: float = 1.0) -> None:
        """Thumbs up (up=True) or down on one response; committed before returning.

        shown: the OTHER responses displayed with it (1 to 15; entries equal to `response` are
        dropped). The observation is then the response against their mean (docs/ALGORITHM.md,
        "Thumbs relative to what was shown"): P(up) = sigma(r(a) - mean_b r(b)), the
        Bradley-Terry comparison z = phi(x, a) - mean_b phi(x, b), y = up, so a thumb moves
        theta along what distinguishes the answer from its alternatives, not along the prompt
        they share. Without `shown`, the alternatives are the candidates this Personalizer last
        offered for the same prompt, if that list holds `response` (`rank` / `score`: all of
        them, whether displayed or not; `choose_pair`: the other one of the pair; remembered for
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
                    return [(model.observation.copy(), y, float(weight))]
            else:
                z = phi.astype(np.float64) - ref

                def learn(model):
                    model.learn_one(z, y, weight=weight)
                    return [(model.observation.copy(), y, float(weight))]
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
                return [(model.observation.copy(), y, float(weight))]
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
            return [(model.observation.copy(), 1.0, float(weight))]
        self._session.observe(learn)

    def choose(self, prompt: str, responses: Sequence[str], chosen_index: int, *,
               weight: float = 1.0) -> None:
        """The user was shown `responses` (2 to 16) for `prompt` and picked
        responses[chosen_index]; committed before returning.

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
        c = _checks.int_in("chosen_index", chosen_index, 0, len(responses) - 1)
        _checks.weight(weight)   # InvalidInputError now, before any store work
        phi = self._features(prompt, responses)

        def learn(model):
            P = model.choice_input(phi)
            model.learn_choice_observation(P, c, weight=weight)
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

    def choose_pair(self, prompt: str, responses: Sequence[str], *, strategy: str = "ucb",
                    q: float = _st.DEFAULT_Q) -> tuple[int, int]:
        """Indices (first, second) of the two responses to show side by side (deployment setting).

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
