"""The Python solvers' numerical guards hold in the Java core too (issue 12), with the same rules.

Python builds each case and records its own verdicts: streams of updates (from a fresh or a
crafted loaded state) with, for every update, whether edge_omd raised NumericalError (and then,
checked here, left every byte of the state as it was); crafted states with the loader's verdict;
cg curvature matrices with the verdict of the Lanczos PSD probe run before an update. The Java
runner (android_demo/core/src/test/.../GuardTests.java) replays them: the same updates refused
(NumericalException, toBytes unchanged), the same states refused, the same probe verdicts, and
the final theta and widths within the goldens' tolerance of Python's. Each case trips a guard in
Python that the Java core lacked before (theta beyond THETA_LIMIT accepted while finite, the
trace and sketch precision guards, the exact solver's eps * kappa guard, the loader checks).
Also: step 3 (Java's Lanczos projection per solver against Python's next states), and the
features of a head with a style block and a wording view (issues 11 and 20: HeadManifest.features,
what the app calls).
Run alone with: pytest -m java tests/android/test_java_guards.py
"""
import json
import os
import re
import subprocess

import numpy as np
import pytest

from edge_omd import RewardModel, state_format
from edge_omd.errors import ConfigError, NumericalError, StateFormatError
from tests.runtime.streams import adversarial_stream
from tests.android import JAVA

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORE = os.path.join(ROOT, "android_demo", "core", "src")

pytestmark = JAVA


# ------------------------------------------------------------------ case builders
def _feed(m, s):
    if s["kind"] == "one":
        m.learn_one(np.array(s["z"]), s["y"], s["w"])
    elif s["kind"] == "pair":
        m.learn_pair(np.array(s["a"]), np.array(s["b"]), s["w"])
    elif s["kind"] == "fantasize":
        m.fantasize(np.array(s["z"]), s["w"])
    elif s["kind"] == "choice":
        m.learn_choice(np.array(s["P"]), s["c"], s["w"])
    else:
        raise ValueError(s["kind"])


def _stream_case(out, name, m, steps, probes):
    """Feed `steps` to m, recording Python's verdicts; writes name.init / name.final states."""
    (out / f"{name}.init.eomd").write_bytes(m.to_bytes())
    verdicts = []
    for s in steps:
        before = m.to_bytes()
        try:
            _feed(m, s)
            verdicts.append("ok")
        except NumericalError:
            assert m.to_bytes() == before, f"{name}: a refused update changed the state"
            verdicts.append("numerical")
    (out / f"{name}.final.eomd").write_bytes(m.to_bytes())
    P = np.array(probes, dtype=np.float64)
    return dict(name=name, kind="stream", steps=steps, verdicts=verdicts, probes=probes,
                widths=m.width(P).tolist())


def _crafted(m, edit):
    """m's state bytes with its payload arrays edited by edit(arrays) (a list of copies)."""
    config, t, fp, arrays = state_format.decode(m.to_bytes())
    arrays = [np.array(a) for a in arrays]
    edit(arrays)
    return state_format.encode(config, t, fp, arrays)


def _load_verdict(data):
    try:
        RewardModel.from_bytes(data)
        return "accepted"
    except StateFormatError as e:
        return str(e)


def _trained(d, n, seed=0, scale=1.0, **cfg):
    m = RewardModel(d, **cfg)
    rng = np.random.default_rng(seed)
    for k in range(n):
        z = rng.standard_normal(d) * scale
        m.learn_one(z, float(k % 2), 1.0)
    return m


def _theta_limit_cases(out):
    """A loaded theta of 1e20 (sigma saturated: no curvature damps the step), eta = w = 1e6,
    lam = 1e-9: the step along z = (1, 1e6, 0, 0) moves theta_2 by ~1e27, finite in float32 but
    beyond THETA_LIMIT (3.1e26): refused; a step that stays within it is taken."""
    cases = []
    for solver, extra in (("exact", {}), ("cg", {}), ("sketch", dict(sketch_rank=2)),
                          ("diagonal", {})):
        m = RewardModel(4, solver=solver, dtype="float64", lam=1e-9, eta=1e6,
                        **extra).astype("float32")

        def edit(a, solver=solver):
            a[0][0] = 1e20
            if solver == "exact":  # phi = U theta
                a[2][:] = a[1].astype(np.float64) @ a[0].astype(np.float64)
        m = RewardModel.from_bytes(_crafted(m, edit))
        steps = [dict(kind="one", z=[1.0, 1e6, 0.0, 0.0], y=0.0, w=1e6),
                 dict(kind="one", z=[1.0, 1e-3, 0.0, 0.0], y=0.0, w=1.0),
                 dict(kind="one", z=[1.0, 0.0, 1e6, 0.0], y=0.0, w=1e6)]
        c = _stream_case(out, f"theta_limit_{solver}", m, steps, [[0, 0, 0, 1.0]])
        assert c["verdicts"] == ["numerical", "ok", "numerical"], c["verdicts"]
        cases.append(c)
    return cases


def _toggle_cases(out):
    """Issue 21, item 1: one thumb toggled on the same answer (cg float32, d = 8, ||z|| = 5,
    3,000 updates). Rounding piled into S until the loader refused the state; the probe now
    repairs it (cg.CGSolver._curvature_lost, Java CgSolver.curvatureLost): no update refused,
    and every state Java leaves loads (GuardTests.stream loads each)."""
    rng = np.random.default_rng(21)
    z = rng.standard_normal(8)
    z = (z * (5.0 / np.linalg.norm(z))).astype(np.float32).astype(np.float64).tolist()
    steps = [dict(kind="one", z=z, y=float(k % 2 == 0), w=1.0) for k in range(3_000)]
    m = RewardModel(8, solver="cg", dtype="float32")
    c = _stream_case(out, "toggle_cg_float32", m, steps, np.eye(8)[:3].tolist())
    assert set(c["verdicts"]) == {"ok"}
    # theta is the small remainder of alternating steps along one z, and each side's repairs
    # read rho from its own Lanczos sums: Java ended 2.3e-3 off Python (measured)
    c["tol32"] = 1e-2
    return [c]


def _growing_stream(d, seed, scales, pair=False):
    rng = np.random.default_rng(seed)
    steps = []
    for k, sc in enumerate(scales):
        z = rng.standard_normal(d)
        z = (z / np.sqrt(z @ z) * sc).tolist()
        if pair:
            steps.append(dict(kind="pair", a=z, b=[0.0] * d, w=1.0))
        else:
            steps.append(dict(kind="one", z=z, y=float(k % 2), w=1.0))
    return steps


def _precision_cases(out):
    """Feature norms growing to 1e4 in float32: the trace guard (cg), the appended row's guard
    (sketch), the rank-one guard (exact) refuse some; small updates in between go on."""
    scales = [3e3, 1, 10, 1e4, 2, 100, 3e4, 0.5, 300, 1e3, 3e3, 1] * 2  # 3e3 first: m = 0
    cases = []
    for solver, extra in (("cg", dict(cg_steps=6)), ("sketch", dict(sketch_rank=2)),
                          ("exact", {})):
        for dt in ("float32", "float64"):
            m = RewardModel(6, solver=solver, dtype=dt, **extra)
            u = (np.arange(6.0) - 2.5) / np.sqrt(17.5)  # one direction, alternating labels: the
            steps = _growing_stream(6, 3, scales) + [  # trace of S (cg) piles up
                dict(kind="one", z=(u * 1e3).tolist(), y=float(k % 2), w=1.0) for k in range(30)]
            c = _stream_case(out, f"precision_{solver}_{dt}", m, steps, np.eye(6)[:3].tolist())
            if dt == "float32":
                assert "numerical" in c["verdicts"] and "ok" in c["verdicts"][1:], c["verdicts"]
            cases.append(c)
    return cases


def _shrink_cases(out):
    """Many shrinks of a rank-2 sketch with rows of norm up to 600 (float32 and float64), the
    forgetting variant too: L refactored from the stored rows, pivots floored at alpha."""
    cases = []
    for dt in ("float32", "float64"):
        for forget in (1.0, 0.9):
            m = RewardModel(8, solver="sketch", sketch_rank=2, dtype=dt, forget=forget)
            rng = np.random.default_rng(7)
            scales = (rng.uniform(0.5, 600.0, 80)).tolist()
            c = _stream_case(out, f"shrink_{dt}_{forget}", m, _growing_stream(8, 11, scales, True),
                             rng.standard_normal((4, 8)).tolist())
            cases.append(c)
    for name in ("big", "scales", "repeat"):  # bench/numerics.py's adversarial streams
        Z, y = adversarial_stream(name, 8, 400, seed=2)
        m = RewardModel(8, solver="sketch", sketch_rank=2, dtype="float32")
        steps = [dict(kind="one", z=Z[k].astype(np.float64).tolist(), y=float(y[k]), w=1.0)
                 for k in range(len(y))]
        c = _stream_case(out, f"shrink_adversarial_{name}", m, steps, np.eye(8)[:4].tolist())
        # float32 rounding differs between the twins over 400 updates piling up along one
        # direction (Java sums B^T c in float64, Numba rounds per row): 1e-2 relative here
        c["tol32"] = 1e-2
        cases.append(c)
    return cases


def _fantasize_then_refused(out):
    """exact: a fantasize keeps the scoring theta while U and phi rotate; an update then refused
    by the overflow guard (||theta|| = 3.16e26 is past THETA_LIMIT of float32, 3.09e26, though
    every entry is within it: the bound path builds the candidate theta and refuses) must leave
    theta's bytes as they were (exact._step builds its candidate in xp, not in theta)."""
    m = RewardModel(4, solver="exact", dtype="float32")

    def edit(a):
        a[0][:] = [3.0e26, 1.0e26, 3.0, -2.0]
        a[2][:] = a[1].astype(np.float64) @ a[0].astype(np.float64)
    m = RewardModel.from_bytes(_crafted(m, edit))
    steps = [dict(kind="fantasize", z=[0.0, 0.0, 0.3, 0.2], w=1.0),
             dict(kind="fantasize", z=[0.0, 0.0, -0.1, 0.4], w=2.0),
             dict(kind="one", z=[0.0, 0.0, 1.0, 1.0], y=0.0, w=1.0)]
    c = _stream_case(out, "exact_fantasize_refused", m, steps, [[0, 0, 1.0, 0]])
    assert c["verdicts"] == ["ok", "ok", "numerical"]
    return [c]


def _fantasize_guard_cases(out):
    """Issue 12's fantasize guards (commit e6b198a), which the Java core lacked: exact float32
    refuses a curvature beyond the step's precision guard (lam = 1e-9) and keeps phi = U theta
    for the loader after many fantasizes that leave theta bit for bit (lam = 1e-4); cg float32
    refuses a nearly repeated ||z|| = 30 before its rounding passes the loader's floor (the
    step's trace guard at lam = 1, the PSD probe on the drift budget at lam = 1e3). Java must
    refuse exactly there, and every state it leaves must load (GuardTests.stream reloads)."""
    cases = []
    theta = [1e3, 3.0, -2.0, 0.5]  # a state the loader accepts

    def set_theta(a):
        a[0][:] = theta
        a[2][:] = a[1].astype(np.float64) @ a[0].astype(np.float64)  # phi = U theta
    m = RewardModel.from_bytes(_crafted(RewardModel(4, solver="exact", dtype="float64",
                                                    lam=1e-9).astype("float32"), set_theta))
    steps = [dict(kind="fantasize", z=[0.0, 0.3, 0.2, 0.1], w=1.0),  # c |z|^2 eps > lam / 10
             dict(kind="fantasize", z=[0.0, 0.0, 0.0, 1e-6], w=1.0)]
    c = _stream_case(out, "fantasize_exact_lam1e-9", m, steps, np.eye(4).tolist())
    assert c["verdicts"] == ["numerical", "ok"], c["verdicts"]
    cases.append(c)
    m = RewardModel.from_bytes(_crafted(RewardModel(4, solver="exact", dtype="float32",
                                                    lam=1e-4), set_theta))
    rng = np.random.default_rng(0)
    steps = [dict(kind="fantasize", z=(20.0 * np.array([0.0, 0.2, 0.3, 0.0])).tolist(), w=1.0)]
    steps += [dict(kind="fantasize", z=(rng.normal(size=4) * 10.0 ** rng.uniform(-1, 1.5)).tolist(),
                   w=1.0) for _ in range(50)]
    c = _stream_case(out, "fantasize_exact_lam1e-4", m, steps, np.eye(4).tolist())
    assert set(c["verdicts"]) == {"ok"}, c["verdicts"]  # (phi repaired: the reloads pass)
    cases.append(c)
    # greedy active selection fantasizes on a copy: a refused row is still picked, the next
    # rounds see the widths without it (strategies.greedy_queries); Java's picks must agree
    from edge_omd import strategies
    m = RewardModel.from_bytes(_crafted(RewardModel(4, solver="exact", dtype="float64",
                                                    lam=1e-9).astype("float32"), set_theta))
    Z = np.array([[0.0, 0.3, 0.2, 0.1], [0.0, 0.0, 0.0, 1e-6], [0.0, 0.31, 0.2, 0.1],
                  [0.0, 0.0, 1e-5, 0.0]])
    with pytest.raises(NumericalError):
        m.copy().fantasize(Z[0])
    (out / "greedy_refused.init.eomd").write_bytes(m.to_bytes())
    picks = [[int(j), float(w)] for j, w in strategies.greedy_queries(m, Z, 4)]
    assert len(picks) == 4
    cases.append(dict(name="greedy_refused", kind="greedy", Z=Z.tolist(), k=4, picks=picks))
    for lam, n_max in ((1.0, 7_500), (1e3, 20_000)):
        rng = np.random.default_rng(0)
        z0 = rng.normal(size=6)
        z0 *= 30.0 / np.linalg.norm(z0)
        m = RewardModel(6, solver="cg", dtype="float32", lam=lam)
        steps, probe = [], m.copy()
        for _ in range(n_max):  # up to Python's first refusal, then two more
            steps.append(dict(kind="fantasize", z=(z0 + 1e-3 * rng.normal(size=6)).tolist(), w=1.0))
            try:
                probe.fantasize(np.array(steps[-1]["z"]))
            except NumericalError:
                break
        steps += steps[-1:] * 2
        c = _stream_case(out, f"fantasize_cg_lam{lam:g}", m, steps, np.eye(6)[:3].tolist())
        assert c["verdicts"][-3:] == ["numerical"] * 3 and "numerical" not in c["verdicts"][:-3]
        # S is run up to the guard, where its float32 rounding (eps trace S) is lam / 10 by
        # construction: the small directions' widths differ by ~1e-3 between the twins
        c["tol32"] = 1e-2
        cases.append(c)
    return cases


def _choice_guard_cases(out):
    """Choices among 2 to 5 with candidate norms growing to 3e4, then 30 along one direction
    (the trace piles up), every solver x dtype: the curvature guards of choice_absorb (exact, cg),
    cg's trace guard, the sketch's drift guard on the move refuse some (float32 mostly), as in
    Python; and a loaded theta of 1e20 with eta = w = 1e6, lam = 1e-9 (exact: the overflow bound;
    cg, sketch, diagonal: the theta limit; mnl.move, the sketch's and diagonal's choice move,
    checked finiteness only before, and took theta to 1e27)."""
    cases = []
    scales = [3e3, 1, 10, 1e4, 2, 100, 3e4, 0.5, 300, 1e3, 3e3, 1] * 2
    u = (np.arange(6.0) - 2.5) / np.sqrt(17.5)
    for solver, extra in (("cg", dict(cg_steps=6)), ("sketch", dict(sketch_rank=2)), ("exact", {}),
                          ("diagonal", {})):
        for dt in ("float32", "float64"):
            rng = np.random.default_rng(3)
            steps = []
            for k, sc in enumerate(scales):
                P = rng.standard_normal((2 + k % 4, 6))
                P *= sc / np.linalg.norm(P, axis=1, keepdims=True)
                steps.append(dict(kind="choice", P=P.tolist(), c=k % len(P), w=1.0))
            steps += [dict(kind="choice", P=[(u * 1e3).tolist(), (-u * 1e3).tolist(), [0.0] * 6],
                           c=k % 2, w=1.0) for k in range(30)]
            m = RewardModel(6, solver=solver, dtype=dt, **extra)
            c = _stream_case(out, f"choice_precision_{solver}_{dt}", m, steps, np.eye(6)[:3].tolist())
            if solver == "cg":
                # theta ~ 1e3 against candidates of norm 3e3: a step's K CG steps are rounding-
                # bound (float32: Python's own jitted and NUMBA_DISABLE_JIT runs differ by 3% at
                # step 11; float64: cond(cal_H) ~ 3e6): only the verdicts are sharp here
                c["tol32"], c["tol64"] = 5e-2, 1e-7
            cases.append(c)
    refused = {c["name"] for c in cases if "numerical" in c["verdicts"]}
    assert {"choice_precision_exact_float32", "choice_precision_cg_float32",
            "choice_precision_sketch_float32"} <= refused, refused
    for solver in ("exact", "cg", "sketch", "diagonal"):
        m = RewardModel(4, solver=solver, dtype="float64", lam=1e-9, eta=1e6,
                        sketch_rank=2 if solver == "sketch" else None).astype("float32")

        def edit(a, solver=solver):
            a[0][0] = 1e20
            if solver == "exact":  # phi = U theta
                a[2][:] = a[1].astype(np.float64) @ a[0].astype(np.float64)
        m = RewardModel.from_bytes(_crafted(m, edit))
        steps = [dict(kind="choice", P=[[1.0, 1e6, 0, 0], [0.0] * 4, [0, 0, 0, 1.0]], c=1, w=1e6),
                 dict(kind="choice", P=[[1.0, 1e-3, 0, 0], [0.0] * 4], c=1, w=1.0),
                 dict(kind="choice", P=[[1.0, 0, 1e6, 0], [0.0] * 4], c=1, w=1e6)]
        c = _stream_case(out, f"choice_theta_limit_{solver}", m, steps, [[0, 0, 0, 1.0]])
        assert c["verdicts"] == ["numerical", "ok", "numerical"], c["verdicts"]
        cases.append(c)
    return cases


def _cg_drift_cases(out):
    """cg float32 at lam = 1e-4 (its MIN_LAM_FLOAT32), unit features: the drift guard (the
    sketch's, linalg.move_drift > DRIFT_LIMIT in cg._step and CGSolver.choice_step) refuses
    some pairs and choices that no other guard refuses (with DRIFT_LIMIT = inf, under
    NUMBA_DISABLE_JIT, Python refuses none of them: measured). Java's CgSolver had no drift
    guard and took them."""
    cases = []
    rng = np.random.default_rng(5)
    steps = []
    for k in range(60):
        z = rng.standard_normal(6)
        steps.append(dict(kind="one", z=(z / np.linalg.norm(z)).tolist(), y=float(k % 2), w=1.0))
    m = RewardModel(6, solver="cg", dtype="float32", lam=1e-4)
    cases.append(_stream_case(out, "cg_drift_float32", m, steps, np.eye(6)[:3].tolist()))
    rng = np.random.default_rng(5)
    steps = []
    for k in range(60):
        P = rng.standard_normal((2, 6))
        P /= np.linalg.norm(P, axis=1, keepdims=True)
        steps.append(dict(kind="choice", P=P.tolist(), c=k % 2, w=1.0))
    m = RewardModel(6, solver="cg", dtype="float32", lam=1e-4)
    cases.append(_stream_case(out, "cg_choice_drift_float32", m, steps, np.eye(6)[:3].tolist()))
    for c in cases:
        assert "numerical" in c["verdicts"] and "ok" in c["verdicts"][1:], c["verdicts"]
        # theta grows along the small directions of cal_H (~1/lam): compare relatively loosely
        c["tol32"] = 1e-3
    return cases


def _new_model_cases():
    """A NEW float32 model whose lam is below its solver's MIN_LAM_FLOAT32 (exact 1e-6, cg and
    sketch 1e-4, diagonal 1e-9) is refused with Python's ConfigError message (it names lam and
    float64); at the floor, in float64, or loaded (the theta-limit cases load float32 states at
    lam = 1e-9) it is not. Java built such models before and refused their first update."""
    cases = []
    for solver in ("auto", "exact", "cg", "sketch", "diagonal"):
        for dt in ("float32", "float64"):
            for lam in (1e-9, 5e-7, 1e-6, 5e-5, 1e-4):
                cfg = dict(solver=solver, dtype=dt, lam=lam)
                if solver == "sketch":
                    cfg["sketch_rank"] = 2
                try:
                    RewardModel(8, **cfg)
                    verdict = "ok"
                except ConfigError as e:
                    verdict = str(e)
                cases.append(dict(name=f"new_{solver}_{dt}_{lam:g}", kind="new_model", dim=8,
                                  config=cfg, verdict=verdict))
    refused = [c for c in cases if c["verdict"] != "ok"]
    assert len(refused) == 12 and all("float32" in c["name"] for c in refused), refused
    assert all("lam=" in c["verdict"] and "float64" in c["verdict"] for c in refused)
    return cases


def _kappa_cases(out):
    """exact: the precision guard before the update after t = 64 (linalg.probe_due, d <= 64):
    eps kappa(cal_H) > linalg.KAPPA_EPS_LIMIT refuses (float32 kappa 1e6, float64 9e12); a mild
    kappa, or the same state one update before the probe is due, goes on."""
    cases = []
    for dt, big in (("float32", 1e3), ("float64", 3e6)):
        for label, top, t in (("ill", big, 64), ("mild", 3.0, 64), ("not_due", big, 63)):
            m = RewardModel(6, solver="exact", dtype=dt)
            config, _t, fp, arrays = state_format.decode(m.to_bytes())
            arrays = [np.array(a) for a in arrays]
            arrays[1][1, 1] = top  # cal_H = diag(1, top^2, 1, ...), theta = phi = 0
            m = RewardModel.from_bytes(state_format.encode(config, t, fp, arrays))
            steps = [dict(kind="one", z=[0.3, -0.2, 0.1, 0.0, 0.2, 0.1], y=1.0, w=1.0)]
            c = _stream_case(out, f"kappa_{label}_{dt}", m, steps, np.eye(6)[:2].tolist())
            assert c["verdicts"] == (["numerical"] if label == "ill" else ["ok"]), (label, dt)
            cases.append(c)
    from edge_omd import linalg
    cases += [dict(name=f"guard_start_{d}", kind="guard_start", d=d,
                   x=linalg.guard_start(d).tolist())
              for d in (1, 7, 4096)]  # the probes' start, built the same way on both sides
    return cases


def _load_cases(out):
    """Crafted states around each loader check, with Python's verdict."""
    cases = []

    def add(name, data):
        (out / f"{name}.load.eomd").write_bytes(data)
        cases.append(dict(name=name, kind="load", verdict=_load_verdict(data)))

    for dt in ("float32", "float64"):
        lam = 1.0
        # ---- cg (d = 6: the Lanczos probe spans the whole space)
        m = _trained(6, 20, dtype=dt, solver="cg")
        add(f"cg_valid_{dt}", m.to_bytes())
        S = m._solver.state.S.astype(np.float64)
        top = np.abs(S).max()

        def set_S(M):
            def edit(a):
                a[1][:] = M
            return edit
        A = S.copy()
        A[0, 1] += 0.1 * top
        add(f"cg_asymmetric_{dt}", _crafted(m, set_S(A)))
        A = S.copy()
        A[2, 2] = -lam
        add(f"cg_negative_diagonal_{dt}", _crafted(m, set_S(A)))
        A = S.copy()
        A[0, 1] = A[1, 0] = 1.5 * np.sqrt(S[0, 0] * S[1, 1]) + 0.5
        add(f"cg_minor_{dt}", _crafted(m, set_S(A)))
        v = np.ones(6) / np.sqrt(6.0)
        for c, label in ((lam / 4, "indefinite"), (lam / 16, "slightly_indefinite")):
            add(f"cg_{label}_{dt}", _crafted(m, set_S(-c * np.outer(v, v))))
        A = S.copy()
        A[3, 3] = 1e33 if dt == "float32" else 1e303
        add(f"cg_headroom_{dt}", _crafted(m, set_S(A)))
        A = S.copy()  # within the headroom, PSD: refused by the trace bound (issue 21, item 6)
        A[3, 3] = 1e30 if dt == "float32" else 1e300
        add(f"cg_huge_trace_{dt}", _crafted(m, set_S(A)))

        def big_theta(a):
            a[0][1] = 1e27 if dt == "float32" else 1e297
        add(f"cg_theta_limit_{dt}", _crafted(m, big_theta))
        # ---- sketch (rank 2, 25 updates: shrinks happened)
        m = _trained(6, 25, dtype=dt, solver="sketch", sketch_rank=2, scale=3.0)
        add(f"sketch_valid_{dt}", m.to_bytes())
        rows = int(m._solver.state.rows[0])
        assert rows >= 2

        def sk(fn):
            def edit(a):
                fn(a)
            return edit
        add(f"sketch_upper_{dt}", _crafted(m, sk(lambda a: a[2].__setitem__((0, 1), 0.5))))
        add(f"sketch_low_pivot_{dt}", _crafted(
            m, sk(lambda a: a[2].__setitem__((1, 1), 0.5 * np.sqrt(a[3][0])))))
        add(f"sketch_not_factor_{dt}", _crafted(
            m, sk(lambda a: a[2].__setitem__((1, 0), a[2][1, 0] * 1.5 + 0.3))))
        add(f"sketch_alpha_below_lam_{dt}", _crafted(m, sk(lambda a: a[3].__setitem__(0, 0.5))))
        add(f"sketch_headroom_{dt}", _crafted(
            m, sk(lambda a: a[1].__setitem__((0, 0), 1e17 if dt == "float32" else 1e152))))
        add(f"sketch_theta_limit_{dt}", _crafted(
            m, sk(lambda a: a[0].__setitem__(2, 1e27 if dt == "float32" else 1e297))))
        # ---- exact
        m = _trained(6, 20, dtype=dt, solver="exact")
        add(f"exact_valid_{dt}", m.to_bytes())

        def phi_off(a):
            a[2][0] = a[2][0] * 1.01 + 0.01
        add(f"exact_phi_{dt}", _crafted(m, phi_off))

        def low_diag(a):
            a[1][4, 4] = 0.5
            a[2][:] = a[1].astype(np.float64) @ a[0].astype(np.float64)
        add(f"exact_low_diagonal_{dt}", _crafted(m, low_diag))

        def ill(a):  # diagonal >= sqrt(lam) but cal_H = U^T U has an eigenvalue ~1e-2 lam
            U = np.eye(6) * np.sqrt(lam)
            U[0, 1] = 10.0
            a[1][:] = U
            a[2][:] = a[1].astype(np.float64) @ a[0].astype(np.float64)
        add(f"exact_ill_conditioned_{dt}", _crafted(m, ill))

        def headroom(a):
            a[1][0, 5] = 1e17 if dt == "float32" else 1e152
            a[2][:] = a[1].astype(np.float64) @ a[0].astype(np.float64)
        add(f"exact_headroom_{dt}", _crafted(m, headroom))

        def th_lim(a):
            a[0][3] = 1e27 if dt == "float32" else 1e297
            a[2][:] = a[1].astype(np.float64) @ a[0].astype(np.float64)
        add(f"exact_theta_limit_{dt}", _crafted(m, th_lim))
        # ---- diagonal
        m = _trained(6, 20, dtype=dt, solver="diagonal")
        add(f"diagonal_valid_{dt}", m.to_bytes())
        add(f"diagonal_below_lam_{dt}", _crafted(m, lambda a: a[1].__setitem__(2, 0.5 * lam)))
        add(f"diagonal_headroom_{dt}", _crafted(
            m, lambda a: a[1].__setitem__(4, 1e33 if dt == "float32" else 1e303)))
        add(f"diagonal_theta_limit_{dt}", _crafted(
            m, lambda a: a[0].__setitem__(1, 1e27 if dt == "float32" else 1e297)))
    return cases


def _cg_probe_cases():
    """The curvature probe run before the update after t = 64 (d = 8 <= 64): S with an
    eigenvalue -lam/4 (refused) or -lam/16 (taken), built into a model directly (the loader
    would refuse the first)."""
    cases = []
    rng = np.random.default_rng(5)
    d = 8
    for dt in ("float32", "float64"):
        for c, expect in ((0.25, "numerical"), (1 / 16, "ok"), (0.6, "numerical")):
            Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
            ev = rng.uniform(0.0, 3.0, d)
            ev[0] = -c
            S = (Q * ev) @ Q.T
            S = (S + S.T) / 2
            m = RewardModel(d, solver="cg", dtype=dt)
            m._solver.state.S[:] = S
            S = m._solver.state.S.astype(np.float64)  # as the dtype holds it
            m._t[0] = 64
            z = rng.standard_normal(d) * 0.3
            try:
                m.learn_one(z, 1.0, 1.0)
                got = "ok"
            except NumericalError:
                got = "numerical"
            assert got == expect, (dt, c, got)
            cases.append(dict(name=f"cg_probe_{dt}_{c:g}", kind="cg_probe", dtype=dt, d=d, lam=1.0,
                              S=S.ravel().tolist(), t=64, z=z.tolist(), verdict=got))
    return cases


def _projection_cases(out):
    """Streams with a radius for every solver (Python's step 3: one Lanczos basis, M mode for
    exact and sketch, H mode for cg, the diagonal's own Newton): Python's state after each
    update, for Java's Solver.project (Lanczos, M / H mode as Python) to reproduce."""
    cases = []
    rng = np.random.default_rng(9)
    for solver, extra in (("exact", {}), ("cg", dict(cg_steps=4, lam_warmup=8)),
                          ("sketch", dict(sketch_rank=3, forget=0.97)), ("diagonal", {})):
        for dt in ("float32", "float64"):
            cfg = dict(solver=solver, dtype=dt, radius=0.6, eta=2.0, **extra)
            m = RewardModel(12, **cfg)
            steps, states = [], [m.to_bytes()]
            for k in range(30):
                a, b = rng.standard_normal(12), rng.standard_normal(12)
                steps.append(dict(kind="pair", a=a.tolist(), b=b.tolist(), w=1.0 + (k % 3)))
                _feed(m, steps[-1])
                states.append(m.to_bytes())
            name = f"projection_{solver}_{dt}"
            for k, data in enumerate(states):
                (out / f"{name}.s{k}.eomd").write_bytes(data)
            cases.append(dict(name=name, kind="projection", steps=steps, radius=cfg["radius"],
                              eta=cfg["eta"], forget=cfg.get("forget", 1.0)))
    # the Lanczos driver alone against a dense solution, with a full and a 3-vector basis
    cases += [dict(name=f"lanczos_unit_{d}", kind="lanczos_unit", d=d, seed=d) for d in (8, 40)]
    return cases


def _style_cases(out):
    """Issue 11: the features of a head whose manifest has a style block are the graph's d
    values followed by the block of each RESPONSE (edge_omd/head/runner.py FeatureHead.features:
    np.hstack([out, style(responses).astype(float32)]), weight from the manifest); without one,
    the graph's values alone. Java's HeadManifest.features (what the app calls) must agree."""
    from edge_omd.head.manifest import validate_manifest
    from edge_omd.head.style import StyleBlock
    from edge_omd.head.views import _wording
    from edge_omd.head.wording import WordingView
    base = {"format": "edge-omd-feature-head", "format_version": 1, "architecture": "bert",
            "kind": "encoder", "d": 8, "pooling": "mean", "normalize": True, "dtype": "fp32",
            "opset": 17, "max_length": 256, "template": "{prompt}\n{response}",
            "add_special_tokens": True, "pad_token_id": 0, "padding_side": "right",
            "graph_files": ["model.onnx"], "graph_sha256": "ab" * 32,
            "fingerprint": "0123456789abcdef" * 4, "tokenizer_file": "tokenizer.json",
            "inputs": ["input_ids", "attention_mask"], "output": "features", "static_shape": None,
            "tokenizer_sha256": "cd" * 32, "max_positions": 512, "variant": None}
    responses = ["Short.",
                 "# Plan\n\n1. Boil water\n2. Add \U0001F600 eggs\n\n```sh\nsleep 540\n```",
                 "", "\u00dcBER stra\u00dfe!!", "- a\n- b\n* c\n\n**bold** and **more**? Yes?",
                 "A " * 300]
    rng = np.random.default_rng(4)
    graph = rng.standard_normal((len(responses), 8)).astype(np.float32)
    cases = []
    for label, weight, wording in (("style_w1.5", 1.5, None), ("style_w0.25", 0.25, None),
                                   ("no_style", None, None), ("views_default", 0.5, True),
                                   ("wording_only", None, {"bits": 5, "ngrams": 1, "transform": "raw"})):
        m = dict(base)
        if weight is not None:
            m["style"] = StyleBlock.fit(["Short.", "A longer answer:\n- one\n- two",
                                         "Why? **Because**!", "1) x\n2) y"], weight).to_manifest()
        if wording is not None:   # issue 20: the wording view follows the style block
            m["wording"] = _wording(wording).to_manifest()
        validate_manifest(m)
        folder = out / f"head_{label}"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
        feats = graph
        if weight is not None:  # runner.py's rule, on the manifest's block
            block = StyleBlock.from_manifest(m["style"])(responses)
            feats = np.hstack([graph, block.astype(np.float32)])
        if wording is not None:
            feats = np.hstack([feats, WordingView.from_manifest(m["wording"])(responses).astype(np.float32)])
        cases.append(dict(name=f"head_features_{label}", kind="head_features",
                          folder=f"head_{label}", graph=graph.astype(np.float64).tolist(),
                          responses=responses, features=feats.astype(np.float64).tolist()))
    return cases


def _thumb_shown_cases(out):
    """A thumb on one answer while others were on screen: Personalizer.thumb(..., shown=)
    learns z = phi(a) - mean phi(shown), y = up (edge_omd/personalizer.py); the app does the
    same through RewardModel.thumbObservation and must end with the same bytes."""
    cases = []
    rng = np.random.default_rng(9)
    for dt in ("float32", "float64"):
        for k, up in ((2, True), (4, False)):
            m = _trained(6, 10, dtype=dt, solver="exact")
            name = f"thumb_shown_{dt}_{k}"
            (out / f"{name}.init.eomd").write_bytes(m.to_bytes())
            phi = rng.standard_normal((k, 6)).astype(np.float32).astype(np.float64)
            m.learn_one(phi[0] - phi[1:].mean(axis=0), 1.0 if up else 0.0)  # the SDK's rule
            (out / f"{name}.final.eomd").write_bytes(m.to_bytes())
            cases.append(dict(name=name, kind="thumb_shown", phi=phi.tolist(), up=up,
                              z=m._observation.astype(np.float64).tolist()))
    return cases


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("java_guards")
    cases_dir, classes = base / "cases", base / "classes"
    cases_dir.mkdir()
    cases = (_theta_limit_cases(cases_dir) + _precision_cases(cases_dir) + _shrink_cases(cases_dir)
             + _fantasize_then_refused(cases_dir) + _fantasize_guard_cases(cases_dir)
             + _choice_guard_cases(cases_dir) + _load_cases(cases_dir) + _cg_probe_cases()
             + _projection_cases(cases_dir) + _style_cases(cases_dir) + _kappa_cases(cases_dir)
             + _thumb_shown_cases(cases_dir) + _toggle_cases(cases_dir)
             + _cg_drift_cases(cases_dir) + _new_model_cases())
    (cases_dir / "cases.json").write_text(json.dumps(cases))
    files = [os.path.join(dp, f) for sub in ("main", "test") for dp, _, fs in
             os.walk(os.path.join(CORE, sub)) for f in fs if f.endswith(".java")]
    subprocess.run(["javac", "-encoding", "UTF-8", "-d", str(classes), *files], check=True,
                   capture_output=True, timeout=300)
    r = subprocess.run(["java", "-Xmx512m", "-cp", str(classes), "dev.edgeomd.GuardTests",
                        str(cases_dir)], capture_output=True, text=True, timeout=300)
    return dict(cases=cases, stdout=r.stdout + r.stderr, rc=r.returncode)


def test_java_guards_agree_with_python(run):
    m = re.search(r"(\d+) passed, (\d+) failed", run["stdout"])
    assert m, run["stdout"][-3000:]
    passed, failed = int(m.group(1)), int(m.group(2))
    assert failed == 0 and run["rc"] == 0, run["stdout"][-6000:]
    assert passed == len(run["cases"]), run["stdout"][-3000:]


def test_the_cases_trip_every_guard(run):
    """The cases exercise what they claim: refusals and acceptances on each side."""
    cases = run["cases"]
    loads = {c["name"]: c["verdict"] for c in cases if c["kind"] == "load"}
    for dt in ("float32", "float64"):
        for solver in ("cg", "sketch", "exact", "diagonal"):
            assert loads[f"{solver}_valid_{dt}"] == "accepted"
        assert loads[f"cg_slightly_indefinite_{dt}"] == "accepted"
        for name in ("cg_asymmetric", "cg_negative_diagonal", "cg_minor", "cg_indefinite",
                     "cg_headroom", "cg_huge_trace", "cg_theta_limit", "sketch_upper", "sketch_low_pivot",
                     "sketch_not_factor", "sketch_alpha_below_lam", "sketch_headroom",
                     "sketch_theta_limit", "exact_phi", "exact_low_diagonal",
                     "exact_ill_conditioned", "exact_headroom", "exact_theta_limit",
                     "diagonal_below_lam", "diagonal_headroom", "diagonal_theta_limit"):
            assert loads[f"{name}_{dt}"] != "accepted", name
    assert "positive semi-definite" in loads["cg_indefinite_float64"]
    assert "trace" in loads["cg_huge_trace_float32"] and "trace" in loads["cg_huge_trace_float64"]
    assert "eigenvalue below" in loads["exact_ill_conditioned_float64"]
    probes = [c["verdict"] for c in cases if c["kind"] == "cg_probe"]
    assert probes.count("numerical") == 4 and probes.count("ok") == 2
