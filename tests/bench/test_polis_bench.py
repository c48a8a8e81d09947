"""The Polis new-user benchmark (bench/polis.py) and its contenders (bench/population.py), on
tiny conversations the tests write (no head: features from a lookup table), and on the real
conversations in ../shared/data/polis where present (hashed features): votes are read as stated
(latest kept, passes dropped), splits are disjoint and hold both classes, AUC is the pair
count, an oracle scores 1, the population model beats a cold start where users share a taste,
the SDK contender scores what a Personalizer scores, and the rule reads its numbers."""
import csv
import json
import math
import os
import zlib

import numpy as np
import pytest

from edge_omd_bench import polis as PB
from edge_omd_bench import population as popm

D = 8
THETA = np.array([1.0, -0.8, 0.6, 0.0, 0.4, -0.3, 0.2, 0.5])


# ================================================================ tiny conversations =========
def write_conversation(folder, topic, comments, votes):
    """comments {comment-id: text}; votes [(timestamp, comment-id, voter-id, vote)] in file order."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "summary.csv"), "w", newline="") as f:
        csv.writer(f).writerows([["topic", topic], ["url", "https://example.org"], ["voters", "3"]])
    with open(os.path.join(folder, "comments.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "datetime", "comment-id", "author-id", "agrees", "disagrees",
                    "moderated", "comment-body"])
        for cid, text in comments.items():
            w.writerow([0, "-", cid, 0, 0, 0, 1, text])
    with open(os.path.join(folder, "votes.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "datetime", "comment-id", "voter-id", "vote"])
        for ts, cid, voter, vote in votes:
            w.writerow([ts, "-", cid, voter, vote])


def statement_features(n, seed):
    """{text: unit feature} of n statements."""
    rng = np.random.default_rng([seed, 5])
    X = rng.standard_normal((n, D))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return {f"statement {seed}-{i}": X[i] for i in range(n)}


def lookup(table):
    def fn(items):
        return np.array([table[t] for _, t in items], np.float32)
    return fn


def synthetic_conversation(folder, *, seed=0, participants=60, statements=30, votes_each=(12, 30),
                           noise=1.0, scale=4.0):
    """Participants sharing the taste THETA: each votes on a random subset in random order,
    agree with P = sigmoid(scale theta.phi) (noise=0: agree iff theta.phi > 0); ~10 % passes."""
    table = statement_features(statements, seed)
    texts = list(table)
    rng = np.random.default_rng([seed, 9])
    votes, ts = [], 0
    for v in range(participants):
        for j in rng.permutation(statements)[: rng.integers(*votes_each, endpoint=True)]:
            ts += int(rng.integers(1, 1000))
            m = scale * float(THETA @ table[texts[j]])
            if rng.random() < 0.1:
                vote = 0
            elif noise == 0:
                vote = 1 if m > 0 else -1
            else:
                vote = 1 if rng.random() < 1 / (1 + math.exp(-m)) else -1
            votes.append((ts, j, 100 + v, vote))
    write_conversation(folder, f"topic {seed}", dict(enumerate(texts)), votes)
    return table


@pytest.fixture(scope="module")
def shared_taste(tmp_path_factory):
    root = tmp_path_factory.mktemp("polis")
    table = {}
    for s in (0, 1):
        table.update(synthetic_conversation(str(root / f"conv{s}"), seed=s))
    return str(root), lookup(table)


# ================================================================ reading votes ==============
def test_latest_vote_kept_pass_dropped(tmp_path):
    write_conversation(tmp_path, "A topic", {0: "first", 1: "second", 2: "never voted on"}, [
        (1, 0, 7, 1), (5, 0, 7, -1),      # voter 7 changes agree -> disagree: disagree kept
        (2, 1, 7, 0),                     # a pass: dropped
        (2, 0, 8, 1), (3, 0, 8, 0),       # voter 8 changes agree -> pass: no vote left
        (4, 1, 8, -1), (4, 1, 8, 1),      # same timestamp: the later row wins
        (0, 1, 9, 1)])
    c = PB.load_conversation(str(tmp_path))
    assert c.topic == "A topic" and c.texts == ["first", "second"]     # 2 has no vote
    got = {(int(c.voter_ids[v]), int(c.comment_ids[i]), bool(u)) for v, i, u in zip(c.voter, c.item, c.up)}
    assert got == {(7, 0, False), (8, 1, True), (9, 1, True)}
    assert c.passes == 2 and c.superseded == 3
    assert [len(s) for s in c.streams()] == [1, 1, 1]


def test_votes_are_in_time_order_per_participant(tmp_path):
    write_conversation(tmp_path, "t", {0: "a", 1: "b", 2: "c"},
                       [(30, 0, 1, 1), (10, 1, 1, -1), (20, 2, 1, 1), (5, 0, 2, 1)])
    c = PB.load_conversation(str(tmp_path))
    assert [c.texts[i] for i in c.item[c.streams()[0]]] == ["b", "c", "a"]


def test_bad_votes_are_refused(tmp_path):
    write_conversation(tmp_path, "t", {0: "a"}, [(1, 0, 1, 2)])
    with pytest.raises(ValueError, match="not -1, 0 or 1"):
        PB.load_conversation(str(tmp_path))
    write_conversation(tmp_path, "t", {0: "a"}, [(1, 3, 1, 1)])
    with pytest.raises(ValueError, match="comment-ids"):
        PB.load_conversation(str(tmp_path))


# ================================================================ AUC ========================
def auc_naive(s, y):
    pos, neg = [a for a, b in zip(s, y) if b], [a for a, b in zip(s, y) if not b]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_auc_is_the_pair_count_with_ties_half():
    rng = np.random.default_rng(3)
    for n in (2, 3, 7, 30):
        for _ in range(20):
            s = rng.integers(0, 4, n).astype(float)        # many ties
            y = rng.random(n) < 0.5
            y[0], y[1] = True, False
            assert PB.auc(s, y) == pytest.approx(auc_naive(s, y), abs=1e-12)
    assert PB.auc(np.zeros(5), [1, 0, 1, 0, 0]) == 0.5
    with pytest.raises(ValueError):
        PB.auc([1.0, 2.0], [1, 1])


# ================================================================ splits =====================
@pytest.mark.parametrize("kind", PB.SPLITS)
def test_splits_are_disjoint_seeded_and_hold_both_classes(shared_taste, kind):
    root, _ = shared_taste
    c = PB.load_conversation(os.path.join(root, "conv0"))
    streams = c.streams()
    sp = PB.make_split(c, kind, 0)
    assert not set(sp.new) & set(sp.population)
    assert set(sp.new) | set(sp.population) == set(range(c.n_participants))
    assert len(sp.new) > 10
    for p in sp.new:
        st = streams[p]
        stream, ev = PB.user_votes(c, st, sp.held)
        assert len(st) >= PB.MIN_VOTES
        h = math.ceil(0.3 * len(st))
        assert np.array_equal(stream, st[: len(st) - h])                 # the first 70 %
        assert set(ev) <= set(st[len(st) - h:])                         # from the last 30 %
        assert c.up[ev].any() and not c.up[ev].all()
        assert sp.held[c.item[ev]].all()
    pop = PB.population_feedback(c, np.zeros((len(c.texts), D), np.float32), sp)
    assert set(pop.user) <= set(sp.population)
    if kind == "statements":
        assert 0 < sp.held.sum() < len(sp.held)
        assert not sp.held[pop.first].any()                 # no evaluated statement in the fit
        assert sp.held.sum() == round(PB.STATEMENT_HOLDOUT * len(sp.held))
    else:
        assert sp.held.all() and pop.n == np.isin(c.voter, sp.population).sum()
    again = PB.make_split(c, kind, 0)
    assert np.array_equal(again.new, sp.new) and np.array_equal(again.held, sp.held)
    assert not np.array_equal(PB.make_split(c, kind, 1).new, sp.new)


def test_window_is_ceil_of_30_percent():
    assert [PB.window(n) for n in (10, 11, 20, 33, 40)] == [3, 4, 6, 10, 12]


# ================================================================ the protocol ===============
THETA_ORACLE = popm.Contender("oracle", "oracle (knows THETA)",
                              lambda pop: (lambda: popm.FixedScorer(pop.Phi @ THETA)))


def test_oracle_scores_one_and_contenders_run_through_the_hook(tmp_path):
    table = synthetic_conversation(str(tmp_path / "c"), noise=0)
    cfg = PB.Config(seeds=(0,), boot=100, data=str(tmp_path))
    res = PB.run(cfg, features=lookup(table), extra=[THETA_ORACLE], log=lambda m: None)
    for kind in PB.SPLITS:
        users = res["splits"][kind][0]["users"]
        assert users
        for u in users:
            assert all(a == 1.0 for a in u["auc"]["oracle"].values())
            assert u["auc"]["sdk_cold"]["0"] == 0.5          # theta = 0: every score tied
            assert u["auc"]["refit"]["0"] == 0.5
            assert ("agree_rate" in u["auc"]) == (kind == "users")
    s = PB.summarize(res)
    assert s["users"]["pooled"]["0"]["oracle"].mean == 1.0
    assert PB.rule_verdict(s, "oracle")["met"]
    assert not PB.rule_verdict(s, "sdk_cold")["met"]


def test_population_model_beats_a_cold_start_when_users_share_a_taste(shared_taste):
    root, fn = shared_taste
    res = PB.run(PB.Config(seeds=(0, 1), boot=300, data=root), features=fn, log=lambda m: None)
    s = PB.summarize(res)
    for kind in PB.SPLITS:
        for k in ("0", "5", "10"):
            d = s[kind]["pooled"][k]["minus"]["sdk_cold"]          # cold - population
            assert d.hi < -0.05, (kind, k, d)
        pooled = s[kind]["pooled"]["0"]
        assert pooled["population"].mean > 0.75
        assert pooled["population"].lo < pooled["population"].mean < pooled["population"].hi
    # a new user in both seeds counts once per seed; clusters <= evaluations
    f = s["users"]["pooled"]["0"]["population"]
    assert f.users <= f.evals and f.evals == sum(len(r["users"]) for r in res["splits"]["users"])
    conv = s["users"]["per_conversation"]
    assert set(conv) == {"conv0", "conv1"}
    assert sum(conv[c]["0"]["population"].evals for c in conv) == f.evals


def test_users_per_k_have_that_many_votes(shared_taste):
    root, fn = shared_taste
    res = PB.run(PB.Config(seeds=(0,), boot=50, data=root, splits=("users",)), features=fn,
                 log=lambda m: None)
    for r in res["splits"]["users"]:
        for u in r["users"]:
            ks = set(u["auc"]["sdk_cold"])
            assert ks == {str(k) for k in PB.CHECKPOINTS if k <= u["stream"]} | {PB.ALL}


def test_sdk_contender_scores_what_a_personalizer_scores(tmp_path):
    """sdk_cold drives RewardModel directly; a Personalizer fed feedback(topic, statement, up)
    (default options) scores the held-out statements identically after every vote."""
    from edge_omd.head.protocol import ArrayHead
    from edge_omd.personalizer import Personalizer
    from edge_omd.store import SQLiteStore
    table = statement_features(25, 4)
    texts = list(table)
    Phi = np.array([table[t] for t in texts], np.float32)
    head = ArrayHead(D, "lookup", lambda p, rs: np.array([table[r] for r in rs]), normalize=False)
    store = SQLiteStore(str(tmp_path / "s.sqlite"))
    p = Personalizer(head, store, "u")
    learner = popm.sdk_cold(popm.Feedback.thumbs(Phi, [0], [0], [True]))()
    held = np.arange(15, 25)
    rng = np.random.default_rng(0)
    for i in range(15):
        up = bool(rng.random() < 0.5)
        p.thumb("topic", texts[i], up)
        learner.thumb(i, up)
        np.testing.assert_array_equal(p.score("topic", [texts[j] for j in held]), learner.scores(held))
    store.close()


@pytest.mark.parametrize("kind", ["thumbs", "pairs"])
def test_pack_contender_is_a_personalizer_scoring_what_its_model_scores(kind):
    """The pack contender drives Personalizer(population=pack) (feedback / prefer / score, every
    update committed); a RewardModel started at the same pack and fed the same feedback scores
    identically after every update, and the pack's scales follow `pop.new_items`."""
    from edge_omd.personalizer import DEFAULT_BUDGET_BYTES
    from edge_omd.reward_model import RewardModel
    rng = np.random.default_rng(3)
    Phi = np.array(list(statement_features(30, 7).values()), np.float32)
    n = 40 * 12
    user = np.repeat(np.arange(40), 12)
    a = rng.integers(30, size=n)
    if kind == "thumbs":
        pop = popm.Feedback.thumbs(Phi, user, a, Phi[a] @ THETA > 0, seed=1)
    else:
        group = np.arange(30) // 3
        b = group[a] * 3 + (a % 3 + 1 + rng.integers(2, size=n)) % 3     # same prompt, other item
        win = np.where(Phi[a] @ THETA > Phi[b] @ THETA, a, b)
        pop = popm.Feedback.pairs(Phi, user, win, a + b - win, seed=1, new_items=True, group=group)
    make = popm.population_pack(pop)
    learner = make()
    assert isinstance(learner, popm.PersonalizerLearner)
    pk = popm.fit_pack(pop, fingerprint=popm.lookup_head(Phi).fingerprint)
    assert pk.fit["item_share"] == (0.3 if kind == "pairs" else 0.0)
    assert learner.p.population.digest == pk.digest
    model = RewardModel(D, population=pk, lam=pk.lam, budget_bytes=DEFAULT_BUDGET_BYTES)
    held = np.arange(24, 30)
    for j in range(12):
        if kind == "thumbs":
            i, up = int(rng.integers(24)), bool(rng.random() < 0.5)
            learner.thumb(i, up)
            model.learn_thumb(Phi[i], up)
        else:
            g = int(rng.integers(8))
            learner.pair(3 * g, 3 * g + 1)
            model.learn_pair(Phi[3 * g], Phi[3 * g + 1])
        np.testing.assert_array_equal(learner.scores(held), model.reward(Phi[held]))
    assert learner.p.updates == 12 and make().p.updates == 0     # a new user starts afresh


def test_quick_cli_writes_json(tmp_path, shared_taste, monkeypatch, capsys):
    root, fn = shared_taste
    monkeypatch.setattr(PB, "minilm_features", lambda head="minilm": fn)
    out = tmp_path / "o.json"
    assert PB.main(["--quick", "--data", root, "--json", str(out), "--contenders",
                    "sdk_cold,population,agree_rate"]) == 0
    text = capsys.readouterr().out
    assert "Rule" in text and "### Split \"statements\"" in text
    j = json.loads(out.read_text())
    assert set(j["results"]["splits"]) == set(PB.SPLITS)
    assert all(len(r["users"]) <= 20 for r in j["results"]["splits"]["users"])


# ================================================================ the contenders =============
def test_resolve_names_and_module_functions():
    got = popm.resolve(["sdk_cold", "edge_omd_bench.population:agree_rate"])
    assert [c.id for c in got] == ["sdk_cold", "agree_rate"] and got[1].item_votes
    mod = "tests.bench.test_polis_bench:THETA_ORACLE"
    assert popm.resolve([mod])[0] is THETA_ORACLE
    with pytest.raises(SystemExit):
        popm.resolve(["nope"])
    assert not popm.applies(popm.CONTENDERS["agree_rate"], item_votes=False, thumbs=True)
    assert popm.applies(popm.CONTENDERS["population"], item_votes=False, thumbs=False)


@pytest.mark.parametrize("n,d,intercept", [(200, 6, True), (200, 6, False), (5, 40, True), (5, 40, False)])
def test_fit_logistic_is_stationary(n, d, intercept):
    rng = np.random.default_rng([n, d])
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.4).astype(float)
    w = rng.integers(1, 4, n).astype(float)
    lam = 0.7
    beta, b = popm.fit_logistic(X, y, w, lam, intercept=intercept)
    s = 1 / (1 + np.exp(-(X @ beta + b)))
    assert np.abs(X.T @ (w * (s - y)) + lam * beta).max() < 1e-6
    if intercept:
        assert abs(w @ (s - y)) < 1e-6
    else:
        assert b == 0.0
    # weights are counts: the same fit as the rows repeated
    rep = np.repeat(np.arange(n), w.astype(int))
    beta2, b2 = popm.fit_logistic(X[rep], y[rep], np.ones(len(rep)), lam, intercept=intercept)
    assert np.allclose(beta, beta2, atol=1e-6) and abs(b - b2) < 1e-6


def test_merged_rows_fit_the_prior_of_every_vote():
    """fit_prior on the merged signed rows (weights = counts) is fit_prior on every vote."""
    from edge_omd.prior import fit_prior
    rng = np.random.default_rng(1)
    Phi = rng.standard_normal((12, 5)).astype(np.float32)
    item = rng.integers(0, 12, 300)
    up = rng.random(300) < 0.6
    pop = popm.Feedback.thumbs(Phi, rng.integers(0, 30, 300), item, up)
    prior = popm.fit_sdk_prior(pop)
    Z = Phi[item].astype(np.float64) * np.where(up, 1.0, -1.0)[:, None]
    ref = fit_prior(Z)
    assert np.allclose(prior.theta0, ref.theta0, atol=1e-9) and prior.c == pytest.approx(ref.c)


def test_agree_rates_and_the_refit_constant():
    Phi = np.eye(3, dtype=np.float32)
    pop = popm.Feedback.thumbs(Phi, [0, 1, 2, 0], [0, 0, 0, 1], [True, True, False, False])
    assert np.allclose(popm.agree_rates(pop), [3 / 5, 1 / 3, 1 / 2])
    L = popm.per_user_refit(pop)()
    L.thumb(0, True)
    L.thumb(1, True)
    assert (L.scores(np.arange(3)) == 0).all()                # one class: a constant
    L.thumb(2, False)
    s = L.scores(np.arange(3))
    assert s[0] > s[2] and s[1] > s[2]


def test_cluster_bootstrap_is_stratified_and_paired():
    strata = np.array([0] * 5 + [1] * 3)
    W = popm.cluster_weights(strata, 400, 0)
    assert (W[:, :5].sum(axis=1) == 5).all() and (W[:, 5:].sum(axis=1) == 3).all()
    rng = np.random.default_rng(0)
    N = rng.integers(1, 4, 8).astype(float)
    S = N * rng.random(8)
    e = popm.ratio_ci(S, N, W)
    assert e.lo <= e.mean <= e.hi and e.mean == pytest.approx(S.sum() / N.sum())
    assert e.users == 8 and e.evals == N.sum()
    z = popm.ratio_ci(S - S, N, W)
    assert z.lo == z.hi == 0.0
    c = popm.ratio_ci(0.7 * N, N, W)
    assert c.lo == pytest.approx(0.7) and c.hi == pytest.approx(0.7)


def test_rule_reads_mean_and_upper_end():
    E = popm.Estimate

    def summary(d):
        return {kind: {"pooled": {"0": {"minus": {"x": d}}, "5": {"minus": {"x": E(0.0, -0.01, 0.01)}}}}
                for kind in PB.SPLITS}
    assert PB.rule_verdict(summary(E(-0.004, -0.02, 0.001)), "x")["met"]
    assert not PB.rule_verdict(summary(E(-0.006, -0.02, 0.01)), "x")["met"]    # mean too low
    assert not PB.rule_verdict(summary(E(-0.001, -0.02, -0.0001)), "x")["met"]  # CI below 0
    one = {"users": summary(E(0.0, -0.01, 0.01))["users"]}
    assert PB.rule_verdict(one, "x")["met"]
    one["statements"] = {"pooled": {"0": {"minus": {}}}}                        # not measured
    assert not PB.rule_verdict(one, "x")["met"]


# ================================================================ the real conversations =====
POLIS = PB.DEFAULT_DIR
real = pytest.mark.skipif(not PB.conversation_dirs(POLIS), reason=f"no Polis data in {POLIS}")


def naive_votes(folder):
    """{(voter-id, comment-id): agree} of the latest non-pass votes, plainly."""
    with open(os.path.join(folder, "votes.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    latest = {}
    for i, r in enumerate(rows):
        key = (int(r["voter-id"]), int(r["comment-id"]))
        t = (int(r["timestamp"]), i)
        if key not in latest or t > latest[key][0]:
            latest[key] = (t, int(r["vote"]))
    return {k: v > 0 for k, (_, v) in latest.items() if v != 0}


@real
@pytest.mark.parametrize("folder", PB.conversation_dirs(POLIS), ids=os.path.basename)
def test_real_conversation_reads_as_stated(folder):
    c = PB.load_conversation(folder)
    got = {(int(c.voter_ids[v]), int(c.comment_ids[i])): bool(u) for v, i, u in zip(c.voter, c.item, c.up)}
    assert got == naive_votes(folder)
    assert c.topic and len(c.texts) == len(set(c.comment_ids))


def hashed(items):
    out = np.empty((len(items), 16), np.float32)
    for i, (p, r) in enumerate(items):
        v = np.random.default_rng(zlib.crc32((p + "\0" + r).encode())).standard_normal(16)
        out[i] = v / np.linalg.norm(v)
    return out


@real
def test_real_conversation_runs_both_splits():
    name = os.path.basename(PB.conversation_dirs(POLIS)[0])
    cfg = PB.Config(seeds=(0,), boot=50, max_new=4, conversations=(name,), data=POLIS)
    res = PB.run(cfg, features=hashed, log=lambda m: None)
    for kind in PB.SPLITS:
        r = res["splits"][kind][0]
        assert len(r["users"]) == 4 and r["new"] >= 4
        for u in r["users"]:
            assert u["votes"] >= PB.MIN_VOTES and 0 < u["agree"] < u["evaluated"]
            assert all(0.0 <= a <= 1.0 for c in u["auc"].values() for a in c.values())
    assert PB.summarize(res)["statements"]["pooled"]["0"]["population"].users == 4


@pytest.mark.parametrize("new_items", [False, True])
def test_population_lam_is_chosen_on_population_users_in_the_evaluated_regime(new_items):
    """Checked records come from held-out population users; when new users are scored on new
    items, from held-out item groups too, and no fitted record touches those groups."""
    rng = np.random.default_rng(2)
    Phi = rng.standard_normal((40, 4)).astype(np.float32)
    group = np.arange(40) // 4                               # 10 "prompts" of 4 answers
    n = 2000
    win = rng.integers(0, 40, n)
    lose = (win // 4) * 4 + (win + rng.integers(1, 4, n)) % 4   # another answer of the prompt
    pop = popm.Feedback.pairs(Phi, rng.integers(0, 50, n), win, lose, seed=3,
                              new_items=new_items, group=group)
    fit, check = popm.validation_split(pop)
    assert fit.any() and check.any() and not (fit & check).any()
    assert not set(pop.user[fit]) & set(pop.user[check])
    groups_fit = set(group[pop.first[fit]]) | set(group[pop.second[fit]])
    groups_check = set(group[pop.first[check]]) | set(group[pop.second[check]])
    assert bool(groups_fit & groups_check) == (not new_items)
    lam, losses = popm.choose_lam(pop)
    assert lam in popm.POP_LAMS and len(losses) == len(popm.POP_LAMS)


def test_head_views_measures_the_demos_head(monkeypatch):
    """--head views embeds with the demo's head (issue 20: the MiniLM embedding and its views),
    the default the MiniLM embedding alone; any other name is refused."""
    import edge_omd.apps.demo as demo
    asked = []
    monkeypatch.setattr(demo, "ensure_demo_head", lambda views, log=None: asked.append(views) or "h")
    PB.minilm_features("views")
    assert asked == ["default"] and PB.HEADS["minilm"] == "none"
    with pytest.raises(SystemExit, match="--head"):
        PB.minilm_features("other")


@pytest.mark.parametrize("new_items", [False, True])
def test_pack_start_is_the_population_models_fit_at_the_packs_lam(new_items):
    """The pack fitted on thumbs (bench `fit_pack`: bare thumbs) starts at the population
    model's beta (intercept fitted, then left out) at the lam the pack's own held-out split
    picks, which bench/population_intercept.py's `one` rule reproduces."""
    from edge_omd.population.fit import LAMS
    from edge_omd_bench import population_intercept as PI
    rng = np.random.default_rng(5)
    Phi = np.array(list(statement_features(30, 8).values()), np.float32)
    user = np.repeat(np.arange(50), 12)
    a = rng.integers(30, size=len(user))
    up = rng.random(len(user)) < 1 / (1 + np.exp(-(1.0 + 3.0 * Phi[a] @ THETA)))
    pop = popm.Feedback.thumbs(Phi, user, a, up, seed=2, new_items=new_items)
    pk = popm.fit_pack(pop)
    lam = PI.pick(pop, [PI.one_split(pop)], LAMS, True)
    assert pk.fit["lam_pop"] == lam
    X, y, w, _ = popm.design(pop)
    beta, b = popm.fit_logistic(X, y, w, lam, intercept=True)
    np.testing.assert_allclose(pk.theta0, beta, atol=1e-6)
    assert pk.fit["intercept"] == pytest.approx(b, abs=1e-6) and b > 0.3
