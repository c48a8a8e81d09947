"""One user's feedback as the fit reads it, and the shards a fit reads users from.

A user's observations are what the SDK's model learns (edge_omd/reward_model.py): observation j
is the rows Z[obs[j]:obs[j+1]] with label y[j] and weight w[j]:
    one row  z, y in {0, 1}: a thumb (z = phi, or phi minus the mean of what was shown) or a
             pair (z = phi_chosen - phi_rejected, y = 1): P(y = 1) = sigma(theta.z);
    k >= 2 rows (the candidates), y = the chosen row: a choice, P = softmax(theta.Z_j)[y].
Its loss is a function of the margins m = Z_j theta: binary log(1 + e^m) - y m, a choice
logsumexp(m) - m_y; `terms` gives its value, gradient and Hessian in margin space.

A shard is anything that iterates over UserData, can be iterated again (a fit makes several
passes) and pickles (it travels to a worker process or a Dask worker): `ArrayShard` holds
arrays in memory (tests, benches), `FeatureCacheShard` reads the on-disk feature cache the CLI
writes (edge_omd/apps/population.py); bench/ has a synthetic shard that regenerates its users.
"""
from __future__ import annotations

import hashlib
from typing import Iterator, NamedTuple, Optional

import numpy as np

from edge_omd.errors import InvalidInputError
from edge_omd.solvers.mnl import MAX_K

__all__ = ["UserData", "make_user", "text_group", "terms", "ArrayShard", "FeatureCacheShard",
           "user_hash", "held_groups"]


class UserData(NamedTuple):
    key: str             # the user id (it decides the user's role in the fit: `user_hash`)
    Z: np.ndarray        # (m, d) float64: the rows of every observation, in time order
    obs: np.ndarray      # (n + 1,) int64: observation j is rows obs[j]:obs[j+1]
    y: np.ndarray        # (n,) float64: label (binary) or chosen row (choice)
    w: np.ndarray        # (n,) float64: weight > 0
    g: np.ndarray        # (n,) int64: the item group of each observation (what it was about:
                         # a prompt, an answer); the fit holds groups out to choose its scales
                         # for items nobody in the population saw (`item_hash`)
    bare: Optional[np.ndarray] = None   # (n,) bool: a bare thumb (z = phi against reward 0),
                         # whose share of ups the population fit explains by an intercept
                         # (fit.py, step 2); None: none is

    @property
    def n(self) -> int:
        return int(len(self.y))

    def take(self, keep: np.ndarray) -> "UserData":
        """The user with only the observations where `keep` ((n,) bool) is True."""
        keep = np.asarray(keep, bool)
        sizes = np.diff(self.obs)[keep]
        rows = np.repeat(keep, np.diff(self.obs))
        return UserData(self.key, self.Z[rows], np.concatenate([[0], np.cumsum(sizes)]),
                        self.y[keep], self.w[keep], self.g[keep],
                        None if self.bare is None else self.bare[keep])

    def with_intercept(self) -> "UserData":
        """The user with one more feature, 1 on the rows of bare thumbs and 0 elsewhere: a
        model over it has an intercept on bare thumbs (fit.py, step 2)."""
        col = np.zeros((len(self.Z), 1))
        if self.bare is not None:
            col[self.obs[:-1][self.bare], 0] = 1.0
        return self._replace(Z=np.hstack([self.Z, col]))


def text_group(*texts: str) -> int:
    """The item group of an observation named by texts (e.g. its prompt): a 63-bit hash."""
    h = hashlib.sha256("\0".join(texts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(h[:8], "little") >> 1


def _rows_group(Z: np.ndarray) -> int:
    """The default item group: a hash of the observation's rows (a thumbed item is its own)."""
    h = hashlib.sha256(np.ascontiguousarray(Z, np.float64).tobytes()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def make_user(key, observations, groups=None, bare=None) -> UserData:
    """UserData from [(rows (k, d) or (d,), label), ...] or [(rows, label, weight), ...] in time
    order, and each observation's item group (ints, e.g. `text_group(prompt)`; None: a hash of
    its rows, so an item is its own group) and whether it is a bare thumb (bools: z = phi, a
    thumb on one response against reward 0; None: none is). InvalidInputError for anything
    else."""
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"a user key must be a non-empty string, got {key!r:.40}")
    rows, obs, ys, ws = [], [0], [], []
    for j, o in enumerate(observations):
        if len(o) not in (2, 3):
            raise InvalidInputError(f"user {key!r}, observation {j}: (rows, label[, weight])")
        Z = np.atleast_2d(np.asarray(o[0], np.float64))
        y = float(o[1])
        w = float(o[2]) if len(o) == 3 else 1.0
        k = Z.shape[0]
        if Z.ndim != 2 or not 1 <= k <= MAX_K or not np.isfinite(Z).all():
            raise InvalidInputError(f"user {key!r}, observation {j}: rows must be 1 to {MAX_K} "
                                    f"finite feature vectors, got shape {Z.shape}")
        if (k == 1 and y not in (0.0, 1.0)) or (k > 1 and not (y.is_integer() and 0 <= y < k)):
            raise InvalidInputError(f"user {key!r}, observation {j}: label {y!r} must be 0 or 1 "
                                    f"(one row) or a row index (a choice among {k})")
        if not (w > 0 and np.isfinite(w)):
            raise InvalidInputError(f"user {key!r}, observation {j}: weight must be > 0")
        rows.append(Z)
        obs.append(obs[-1] + k)
        ys.append(y)
        ws.append(w)
    if not rows:
        raise InvalidInputError(f"user {key!r} has no observation")
    d = rows[0].shape[1]
    if any(r.shape[1] != d for r in rows):
        raise InvalidInputError(f"user {key!r}: observations of different dimensions")
    if groups is None:
        g = np.array([_rows_group(r) for r in rows], np.int64)
    else:
        try:
            g = np.array(list(groups), dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInputError(f"user {key!r}: groups must be int64 integers") from exc
        if g.shape != (len(rows),):
            raise InvalidInputError(f"user {key!r}: {len(g)} groups for {len(rows)} "
                                    "observations")
    if bare is not None:
        bare = list(bare)
        if len(bare) != len(rows) or not all(isinstance(x, (bool, np.bool_)) for x in bare):
            raise InvalidInputError(f"user {key!r}: bare must be one bool per observation")
        bare = np.array(bare, bool)
        if (bare & (np.diff(obs) != 1)).any():
            raise InvalidInputError(f"user {key!r}: a bare thumb is one row, not a choice")
    return UserData(key, np.concatenate(rows), np.asarray(obs, np.int64),
                    np.asarray(ys, np.float64), np.asarray(ws, np.float64), g, bare)


def user_hash(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by the user id and the fit's seed: the user's role (held out
    or fitted) depends on nothing else, so every shard agrees on it."""
    h = hashlib.sha256(f"{int(seed)}\0{key}".encode()).digest()
    return int.from_bytes(h[:8], "little") / 2.0 ** 64


def held_groups(g: np.ndarray, seed: int, share: float) -> np.ndarray:
    """(n,) bool: which item groups the fit holds out (a fixed share of all groups, by a hash
    of the group and the seed: every shard agrees, and so does every user on one group)."""
    if share <= 0.0:
        return np.zeros(len(g), bool)
    x = np.asarray(g, np.int64).astype(np.uint64) ^ np.uint64((int(seed) * 0x9E3779B97F4A7C15)
                                                              & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):              # splitmix64: wrapping multiplications
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 < share


def _sigmoid(m):
    return 0.5 * (1.0 + np.tanh(0.5 * m))


def terms(u: UserData, theta: np.ndarray):
    """(loss, dL/dm (m,), blocks) of the user's observations at theta, weights applied:
    blocks = [(start, end, d2L/dm2)] per choice, and for the binary rows the diagonal (m,)
    curvature w sigma'(m) (0 on choice rows). Loss: binary log(1 + e^m) - y m, choice
    logsumexp - m_y."""
    m = u.Z @ theta
    g = np.zeros_like(m)
    diag = np.zeros_like(m)
    sizes = np.diff(u.obs)
    one = sizes == 1
    loss = 0.0
    if one.any():
        r = u.obs[:-1][one]
        mb, yb, wb = m[r], u.y[one], u.w[one]
        s = _sigmoid(mb)
        loss += float(wb @ (np.logaddexp(0.0, mb) - yb * mb))
        g[r] = wb * (s - yb)
        diag[r] = wb * s * (1.0 - s)
    blocks = []
    for j in np.flatnonzero(~one):
        a, b = int(u.obs[j]), int(u.obs[j + 1])
        mj = m[a:b]
        top = mj.max()
        e = np.exp(mj - top)
        p = e / e.sum()
        c = int(u.y[j])
        w = float(u.w[j])
        loss += w * float(top + np.log(e.sum()) - mj[c])
        gj = p.copy()
        gj[c] -= 1.0
        g[a:b] = w * gj
        blocks.append((a, b, w * (np.diag(p) - np.outer(p, p))))
    return loss, g, diag, blocks


def margin_hessian(diag, blocks, m: int) -> np.ndarray:
    """The (m, m) Hessian in margin space from `terms`' diagonal and choice blocks."""
    D = np.diag(diag)
    for a, b, B in blocks:
        D[a:b, a:b] = B
    return D


class ArrayShard:
    """Users held in memory: UserData objects, iterated in order."""

    def __init__(self, users):
        self.users = list(users)

    def __iter__(self) -> Iterator[UserData]:
        return iter(self.users)

    def __len__(self):
        return len(self.users)


class FeatureCacheShard:
    """Users [lo, hi) of a feature cache written by edge_omd/apps/population.py: a folder
    with rows.f32 (all rows, float32, (R, d)), obs.i64 (observation starts, n_obs + 1), y.f64,
    w.f64, users.i64 (each user's first observation, U + 1) and keys.txt (one user id a line).
    The arrays are memory-mapped: only the user being read is in memory. The cache keeps no
    bare-thumb marks, so a fit over it has no intercept (`UserData.bare`)."""

    def __init__(self, folder: str, lo: int, hi: int, d: int):
        self.folder, self.lo, self.hi, self.d = str(folder), int(lo), int(hi), int(d)

    def _map(self, name, dtype):
        import os
        return np.memmap(os.path.join(self.folder, name), dtype=dtype, mode="r")

    def __iter__(self) -> Iterator[UserData]:
        import os
        rows = self._map("rows.f32", np.float32).reshape(-1, self.d)
        obs, y, w = self._map("obs.i64", np.int64), self._map("y.f64", np.float64), \
            self._map("w.f64", np.float64)
        ustart = self._map("users.i64", np.int64)
        with open(os.path.join(self.folder, "keys.txt"), encoding="utf-8") as f:
            keys = [line.rstrip("\n") for line in f]
        for u in range(self.lo, self.hi):
            a, b = int(ustart[u]), int(ustart[u + 1])
            o = np.array(obs[a:b + 1], np.int64)
            Z = np.array(rows[o[0]:o[-1]], np.float64)
            o = o - o[0]
            g = np.array([_rows_group(Z[o[j]:o[j + 1]]) for j in range(b - a)], np.int64)
            yield UserData(keys[u], Z, o, np.array(y[a:b]), np.array(w[a:b]), g)

    def __len__(self):
        return self.hi - self.lo
