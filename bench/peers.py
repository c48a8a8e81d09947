"""The real peers a user would reach for, behind the `Contender` interface (contenders.py).

First-order: River `LogisticRegression` (SGD, Adam), scikit-learn `SGDClassifier.partial_fit`,
Vowpal Wabbit's default update. Second-order sketched: Vowpal Wabbit `--OjaNewton`.
Every one learns without an intercept (a pairwise model has none) from the same flipped stream.
"""
from __future__ import annotations

import math

import numpy as np

from edge_omd_bench.base import FIRST_ORDER, Contender


class RiverLR(Contender):
    family = FIRST_ORDER

    def __init__(self, dim: int, *, optimizer: str, lr: float, name: str | None = None, seed: int = 0):
        from river import linear_model, optim
        opt = optim.SGD(lr) if optimizer == "sgd" else optim.Adam(lr)
        self.model = linear_model.LogisticRegression(optimizer=opt, l2=0.0, intercept_lr=0.0)
        self.dim = dim
        self.optimizer = optimizer
        self.name = name or f"River LogReg {'SGD' if optimizer == 'sgd' else 'Adam'}"

    def prepare(self, z, y):
        return (dict(enumerate(z.tolist())), bool(y))

    def learn_prepared(self, item) -> None:
        self.model.learn_one(item[0], item[1])

    def theta_vector(self) -> np.ndarray:
        w = np.zeros(self.dim)
        for j, v in self.model.weights.items():
            w[j] = v
        return w

    def state_bytes(self) -> int:
        # River keeps a dict {feature: float} for the weights (plus optimizer state for Adam:
        # two more dicts); we count 8 bytes per stored float, not the dict overhead.
        n = len(self.model.weights)
        return 8 * n * (3 if self.optimizer == "adam" else 1)


class SklearnSGD(Contender):
    family = FIRST_ORDER

    def __init__(self, dim: int, *, alpha: float, name: str | None = None, seed: int = 0):
        from sklearn.linear_model import SGDClassifier
        self.model = SGDClassifier(loss="log_loss", alpha=alpha, fit_intercept=False,
                                   learning_rate="optimal", random_state=seed)
        self.dim = dim
        self._classes = np.array([0, 1])
        self.name = name or "sklearn SGDClassifier"

    def prepare(self, z, y):
        return (np.asarray(z, dtype=np.float64).reshape(1, -1), np.array([int(y)]))

    def learn_prepared(self, item) -> None:
        self.model.partial_fit(item[0], item[1], classes=self._classes)

    def theta_vector(self) -> np.ndarray:
        if not hasattr(self.model, "coef_"):
            return np.zeros(self.dim)
        return np.asarray(self.model.coef_[0], dtype=np.float64)

    def state_bytes(self) -> int:
        return 8 * self.dim


def peer_missing(module: str) -> str | None:
    """"<module> not installed" if the optional peer package is absent, else None.

    Only an absent package is a reason to leave its contenders out ("not installed" rows in the
    report); a package that is installed but fails to import (a missing dependency, a broken
    build) raises, like any other error: a benchmark must not quietly shrink its lineup.
    """
    import importlib
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return f"{module} not installed"
        raise
    return None


class VW(Contender):
    """Vowpal Wabbit through its Python bindings, logistic loss, labels -1/1, no constant.

    Features are named by their integer index, which VW maps to weight slot index (no hashing
    collisions when 2^b > d; b is the smallest such). theta is read back by probing unit
    vectors (VW's prediction is linear in x for both reductions; tested)."""

    def __init__(self, dim: int, *, learning_rate: float | None = None, oja_sketch: int | None = None,
                 alpha: float | None = None, name: str | None = None, seed: int = 0):
        import vowpalwabbit
        self.dim = dim
        self.oja_sketch = int(oja_sketch) if oja_sketch else 0
        self.bits = max(1, math.ceil(math.log2(dim + 1)))
        args = f"--loss_function logistic --quiet --noconstant -b {self.bits} --random_seed {seed}"
        if oja_sketch:
            args += f" --OjaNewton --sketch_size {int(oja_sketch)}"
            if alpha is not None:
                args += f" --alpha {alpha}"
            self.family = "second-order sketch"
            self.name = name or f"VW OjaNewton m={oja_sketch}"
        else:
            if learning_rate is not None:
                args += f" --learning_rate {learning_rate}"
            self.family = FIRST_ORDER
            self.name = name or "VW (adaptive, normalized)"
        self.args = args
        self.ws = vowpalwabbit.Workspace(args)
        self._probe = [f"| {j}:1" for j in range(dim)]

    def prepare(self, z, y):
        return ("1 | " if y else "-1 | ") + " ".join(f"{j}:{v:.7g}" for j, v in enumerate(z.tolist()))

    def learn_prepared(self, item) -> None:
        self.ws.learn(item)

    def theta_vector(self) -> np.ndarray:
        return np.array([self.ws.predict(p) for p in self._probe], dtype=np.float64)

    def predict_line(self, z) -> float:
        return float(self.ws.predict("| " + " ".join(f"{j}:{v:.7g}" for j, v in enumerate(z.tolist()))))

    def state_bytes(self) -> int:
        # VW allocates 2^b weight slots of `stride` floats each (OjaNewton widens the stride to
        # hold its sketch); the m x m side matrices of OjaNewton are added for honesty.
        b = int(self.ws.num_weights()) * int(self.ws.get_stride()) * 4
        if self.oja_sketch:
            m = self.oja_sketch
            b += 8 * (3 * m * m + 4 * m)
        return b


