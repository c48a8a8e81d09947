"""A user who learned against one population pack, moved to another (the vendor ships pack v2).

A user's state after learning from pack 1 reads as a Gaussian posterior: theta_t with precision
cal_H_t = P_1 + D, where P_1 = pack 1's cal_H_0 (its start) and D the curvature the user's own
feedback added. Moving the user to pack 2 swaps the prior and keeps the user's evidence:

    H_2     = cal_H_t - P_1 + P_2                                   (= P_2 + D)
    theta_2 = H_2^{-1} (cal_H_t theta_t - P_1 mu_1 + P_2 mu_2)      (mu = a pack's theta_pop)

A user who learned nothing moves to pack 2's start exactly (up to the state's rounding); a user
with much evidence keeps their taste, the new population's view entering only where their own
feedback is thin. (Shifting theta by mu_2 - mu_1 and keeping cal_H, the simpler choice, keeps
pack 1's firm and weak directions in cal_H and moves the user by the whole population change
even along directions their own feedback had already settled.)

Floor: the state must keep cal_H >= damping I (lam, or cg's lambda_{t+1}). Without forgetting,
D >= 0 and H_2 >= P_2 >= lam_2 I hold by themselves; with forgetting (forget < 1) or cg's
warm-up, cal_H_t - P_1 can be indefinite, so H_2's eigenvalues below the damping are raised to
it (the user's evidence there is already discounted to less than the prior's floor).

Solvers: exact and cg hold H_2 exactly (a dense d x d eigendecomposition, O(d^3): 0.6-2.4 s at
d = 384 on a loaded 2-core machine, a one-off per user); the diagonal swaps diagonals, h_2 =
h_t - diag P_1 + diag P_2, theta_2 elementwise (the same approximation it makes at every
update); the sketch (alpha I + B B^T) is refused (ConfigError): a pack with directions cannot
start a sketch anyway, and a K = 0 pack user on a sketch keeps the old pack or resets. The
model's lam becomes pack 2's (its precisions include it); t (updates absorbed) is kept. "No
pack" (a user who started cold, or a vendor withdrawing the pack) is theta = 0, cal_H_0 =
lam I. The store side (one transaction, the record's pack digest) is HeadRegistry's
(edge_omd/head/registry.py) and Personalizer.migrate_pack's.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from edge_omd.errors import ConfigError
from edge_omd.population.pack import Pack

__all__ = ["migrate"]


def _prior(pack: Optional[Pack], lam: float, d: int):
    """(mu, P) of a pack: theta_pop and the dense cal_H_0; no pack: (0, lam I)."""
    if pack is None:
        return np.zeros(d), lam * np.eye(d)
    return np.array(pack.theta0), pack.precision()


def migrate(model, old: Optional[Pack], new: Optional[Pack]):
    """`model` (a RewardModel that started at `old`, a Pack or None) moved to `new` (a Pack or
    None): a new RewardModel (module docstring); `model` is unchanged. ConfigError, with
    nothing changed, for a pack of another dim or head, a model whose lam is not `old`'s, the
    sketch solver, or a moved theta beyond the model's radius."""
    from edge_omd.reward_model import RewardModel
    if not isinstance(model, RewardModel):
        raise ConfigError(f"migrate needs a RewardModel, got {type(model).__name__}")
    d, fp = model.dim, model.head_fingerprint
    for name, p in (("old", old), ("new", new)):
        if p is None:
            continue
        if not isinstance(p, Pack):
            raise ConfigError(f"{name} must be a Pack or None, got {type(p).__name__}")
        if p.dim != d:
            raise ConfigError(f"the {name} pack has dim {p.dim}, the user's model {d}")
        if p.fingerprint is not None and fp is not None and p.fingerprint != fp:
            raise ConfigError(f"the {name} pack was fitted on head {p.fingerprint.hex()[:16]}..., "
                              f"the user's state is bound to {fp.hex()[:16]}...: a pack moves "
                              "users within one head (a new head: HeadRegistry.reset)")
    lam = model.config.lam
    if old is not None and old.lam != lam:
        raise ConfigError(f"the user's model has lam = {lam:g}, the old pack {old.lam:g}: this "
                          "user did not start at that pack (the store record's pack digest "
                          "names the one it did)")
    if model.solver == "sketch":
        raise ConfigError("a sketch state (alpha I + B B^T) cannot take another pack's "
                          "curvature: keep the user on the old pack, or reset them")
    lam2 = lam if new is None else new.lam
    out = RewardModel.from_config(model.config.replace(lam=lam2), head_fingerprint=fp,
                                  population=new)
    if old is new or (old is not None and new is not None and old.digest == new.digest):
        return model.copy()
    t = model.t
    floor = out._damping(t)
    theta_t = np.asarray(model.theta, np.float64)
    H_t = model._curvature()
    (mu1, P1), (mu2, P2) = _prior(old, lam, d), _prior(new, lam2, d)
    if H_t.ndim == 1:                                  # the diagonal: diagonals throughout
        p1, p2 = np.diag(P1), np.diag(P2)
        h2 = np.maximum(H_t - p1 + p2, floor)
        theta2 = (H_t * theta_t - p1 * mu1 + p2 * mu2) / h2
        c, V = 0.0, np.sqrt(h2 - floor)[None, :]
    else:
        H2 = H_t - P1 + P2
        e, U = np.linalg.eigh(0.5 * (H2 + H2.T) - floor * np.eye(d))
        e = np.maximum(e, 0.0)                         # the floor (module docstring)
        keep = e > 0.0
        V = (np.sqrt(e[keep])[:, None] * U[:, keep].T)  # V^T V = H_2 - floor I, floored
        b = H_t @ theta_t - P1 @ mu1 + P2 @ mu2
        theta2 = U @ ((U.T @ b) / (e + floor))
        c = 0.0
    radius = model.config.radius
    if radius is not None and not np.linalg.norm(theta2) <= radius:
        raise ConfigError(f"the moved user's ||theta|| = {np.linalg.norm(theta2):.4g} is beyond "
                          f"the model's radius {radius:g}; keep the user on the old pack or "
                          "reset them")
    out._restart(theta2, c, V, 1.0, t)
    return out
