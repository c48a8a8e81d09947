"""The `Contender` interface every learner in the benchmark implements.

A contender learns from a stream of (z, y), z = phi(x, a) - phi(x, a') and y in {0, 1}
(1: a won), and is judged by its margins theta^T z on held-out pairs. Peers that are generic
binary classifiers see exactly the same stream as edge-omd: a comparison (phi_c, phi_r) is
presented as (z, 1) or (-z, 0) by a seeded coin, so both classes occur (workloads.py flips).

Each library gets its native input format (River: a dict, Vowpal Wabbit: a text line), built by
`prepare` *outside* the timed region; `learn_prepared` is what the benchmark times.
"""
from __future__ import annotations

from typing import Any

import numpy as np


FIRST_ORDER = "first-order"     # the family the targets compare edge-omd against (targets.py)


class Contender:
    """Base class: subclasses implement `learn_prepared`, `theta_vector` and `state_bytes`."""

    name: str = "?"
    family: str = "?"

    def prepare(self, z: np.ndarray, y: int) -> Any:
        """Convert one example to the library's native input (not timed)."""
        return (z, y)

    def learn_prepared(self, item: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def learn_one(self, z: np.ndarray, y: int) -> None:
        self.learn_prepared(self.prepare(z, y))

    def sync(self) -> None:
        """Bring the model to the state it holds after the last label (lazy learners)."""

    def theta_vector(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def margins(self, Z: np.ndarray) -> np.ndarray:
        """theta^T z for each row of Z: (n, d) -> (n,) float64."""
        self.sync()
        return np.asarray(Z, dtype=np.float64) @ self.theta_vector()

    def state_bytes(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError
