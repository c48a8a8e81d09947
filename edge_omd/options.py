"""The frozen settings of one Personalizer: every option checked once, in one place.

    >>> from edge_omd.options import PersonalizerOptions
    >>> PersonalizerOptions(beta=0.5, model_options={"dtype": "float64"}).beta
    0.5
    >>> PersonalizerOptions(delta=2.0)
    Traceback (most recent call last):
    ...
    edge_omd.errors.ConfigError: delta must be in (0, 1), got 2.0

`Personalizer(head, store, user_id, options)` takes one; `Personalizer(head, store, user_id,
beta=0.5, ...)` builds one from the same keyword arguments (a ConfigError names an unknown one).
Like ModelConfig (edge_omd/config.py) it is validated when made, and `replace` gives a checked
copy. What depends on the head (a population pack fitted on it) is checked by `check_head`.
"""
from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

import numpy as np

from edge_omd import _checks
from edge_omd import strategies as _st
from edge_omd.errors import ConfigError
from edge_omd.feature_cache import DEFAULT_FEATURE_CACHE_BYTES
from edge_omd.population.pack import Pack
from edge_omd.prior import Prior

__all__ = ["PersonalizerOptions", "DEFAULT_BUDGET_BYTES"]

#: A new user's state budget unless model_options says otherwise: the exact model up to
#: d = 1448 (every head below that keeps it), a robust-FD sketch of rank ~186 at d = 4096
#: (Llama-3-8B), within 0.2 accuracy points of the 64 MiB exact state on power-law features
#: (`python -m edge_omd_bench.budget`). `model_options={"budget_bytes": None}` gives exact.
DEFAULT_BUDGET_BYTES = 8 << 20


@dataclass(frozen=True)
class PersonalizerOptions:
    """How one Personalizer decides and persists (its user's model settings are model_options).

    beta: confidence radius of `pair_to_show(strategy="ucb")` (rank's pessimism is separate):
        a float >= 0 (strategies.DEFAULT_BETA) or "paper" for beta_t = sqrt(d) log((t+1)/delta).
    delta: the failure probability of beta="paper", in (0, 1).
    model_options: keyword arguments of `RewardModel(head.dim, ...)` for a NEW user; a stored
        user keeps the hyperparameters it was created with. `budget_bytes` defaults to
        DEFAULT_BUDGET_BYTES (8 MiB: exact up to d = 1448, a sketch above) unless a solver is
        named; `{"budget_bytes": None}` or `{"solver": "exact"}` gives exact at any d. Held as
        a read-only mapping.
    seed: seeds the "random" strategy (anything numpy.random.default_rng takes).
    checkpoint_every: journal records between two checkpoints, an int >= 1 (None: the default
        for the model's shape, store.session.default_checkpoint_every).
    feature_cache_bytes: bound of the feature cache, an int >= 0 (0 disables it).
    population: a population pack (edge_omd.population.Pack; a Prior is taken as
        `Pack.from_prior`) fitted on the head: a NEW user (and `reset`) starts at it. Without
        one, theta = 0 and cal_H = lam I. `pack` is it as a Pack.
    """
    beta: Union[float, str] = _st.DEFAULT_BETA
    delta: float = 0.05
    model_options: Optional[Mapping] = None
    seed: Optional[object] = None
    checkpoint_every: Optional[int] = None
    feature_cache_bytes: int = DEFAULT_FEATURE_CACHE_BYTES
    population: Union[Pack, Prior, None] = None
    pack: Optional[Pack] = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self):
        put = object.__setattr__
        delta = _checks.at_least("delta", self.delta, 0.0, ConfigError)
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"delta must be in (0, 1), got {self.delta!r}")
        put(self, "delta", delta)
        if isinstance(self.beta, str):
            if self.beta != "paper":
                raise ConfigError(f"beta must be a float >= 0 or 'paper', got {self.beta!r}")
        else:
            try:
                put(self, "beta", _checks.at_least("beta", self.beta, 0.0, ConfigError))
            except ConfigError:
                raise ConfigError(f"beta must be a finite float >= 0 or 'paper', "
                                  f"got {self.beta!r}") from None
        mo = {} if self.model_options is None else self.model_options
        if not isinstance(mo, Mapping):
            raise ConfigError(f"model_options must be a dict of RewardModel keyword arguments, "
                              f"got {type(mo).__name__}")
        if not all(isinstance(k, str) for k in mo):
            raise ConfigError("model_options keys must be str (RewardModel keyword arguments)")
        if "prior" in mo or "population" in mo:
            raise ConfigError("pass the population pack as Personalizer(..., population=), not "
                              "in model_options")
        put(self, "model_options", types.MappingProxyType(dict(mo)))
        try:
            np.random.default_rng(self.seed)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"seed must be None or a non-negative int, got "
                              f"{self.seed!r}") from exc
        for name, lo in (("checkpoint_every", 1), ("feature_cache_bytes", 0)):
            v = getattr(self, name)
            if v is None and name == "checkpoint_every":
                continue
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"{name} must be an int >= {lo}, got {v!r}")
            put(self, name, int(v))
        given = self.population
        if given is not None and not isinstance(given, (Pack, Prior)):
            raise ConfigError(f"population must be an edge_omd.population.Pack, got "
                              f"{type(given).__name__}")
        put(self, "pack", given if isinstance(given, Pack) or given is None
            else Pack.from_prior(given))

    @classmethod
    def of(cls, options: Optional["PersonalizerOptions"], settings: dict) -> "PersonalizerOptions":
        """The options of `Personalizer(..., options, **settings)`: `options` with `settings`
        replaced (fields by name; `prior` is population's older name), or the settings alone.
        ConfigError for an unknown name or a pack given twice."""
        if options is not None and not isinstance(options, cls):
            raise ConfigError(f"options must be a PersonalizerOptions, got "
                              f"{type(options).__name__}")
        settings = dict(settings)
        if "prior" in settings:
            prior = settings.pop("prior")
            if settings.get("population") is not None and prior is not None:
                raise ConfigError("give the population pack once: population= (prior= is its "
                                  "older name)")
            if prior is not None:
                settings["population"] = prior
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise ConfigError(f"unknown Personalizer option(s) {', '.join(unknown)}; the options "
                              f"are {', '.join(names)} (and prior, population's older name)")
        if options is None:
            return cls(**settings)
        return options.replace(**settings) if settings else options

    def replace(self, **changes) -> "PersonalizerOptions":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def check_head(self, head) -> None:
        """ConfigError unless the population pack (if any) was fitted on `head` (its dim and
        fingerprint)."""
        pack = self.pack
        if pack is None:
            return
        head_fp = None if head.fingerprint is None else bytes(head.fingerprint)
        if pack.dim != int(head.dim) or pack.fingerprint != head_fp:
            raise ConfigError(
                f"the population pack was fitted on another head (dim {pack.dim}, fingerprint "
                f"{'none' if pack.fingerprint is None else pack.fingerprint.hex()[:16]}) than "
                f"this one (dim {int(head.dim)}, fingerprint "
                f"{'none' if head_fp is None else head_fp.hex()[:16]}); fit one on this head: "
                "edge-omd population fit FEEDBACK OUT --head HEAD")

    def model_kwargs(self) -> dict:
        """The keyword arguments of a new user's `RewardModel(head.dim, population=pack, ...)`:
        model_options, with budget_bytes = DEFAULT_BUDGET_BYTES unless a budget or a solver is
        given, and the pack's lam unless lam is (the pack's precisions include its lam)."""
        out = dict(self.model_options)
        if "budget_bytes" not in out and out.get("solver", "auto") == "auto":
            out["budget_bytes"] = DEFAULT_BUDGET_BYTES
        if self.pack is not None and "lam" not in out:
            out["lam"] = self.pack.lam
        return out
