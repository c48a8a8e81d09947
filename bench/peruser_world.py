"""The world of the per-user benchmark (bench/peruser.py): prompts with candidate answers from
varied sources, hidden text properties, simulated users, and the answer-form "style block".

Candidates (`build_world`), each prompt has `n_cands` distinct answers, in a seeded order:
- the demo corpus (edge_omd/data/demo_corpus.json): `n_cands - 1` of a prompt's 8-12 written
  answers, plus one form variant of one of them;
- HH-RLHF helpful-base (read where it lies, /work/shared/data/hh-rlhf, never copied): single-turn
  prompts; the human-chosen and the rejected answer plus form variants of either (shortened,
  bulleted, numbered, hedged, polite, enthusiastic, with a header, with an example, asking back),
  generated deterministically from the text (`VARIANTS`).
Prompts are split once into train (the users give feedback on these) and test (never asked
about), by a seeded permutation stratified by source.

Hidden properties (`hidden_properties`): what the simulated users care about, computed from the
raw text with rules no candidate feature computes (lexicons, binary presence, a per-user length
target); standardised over the world's answers. A user's utility is
    u(a) = sum_k w_k s_k(a) + w_len * len_term(a) + eps_a,
with a sparse random w over the properties, a length taste that is monotone (short/long) or
peaked at a target word count (not linear in any feature), and a fixed idiosyncratic eps_a
(what no feature explains). Asked "a or b?", the user answers by Bradley-Terry with temperature
T: P(a) = sigma((u(a) - u(b)) / T). A thumb on a single answer is up with probability
sigma((u(a) - m) / T), m the user's median utility over the train answers (absolute content).

Populations: `draw_users(population_seed, n, cfg)`; the design population and a second one
drawn with another seed are reported separately (the benchmark must not grade its own design).

Groups of users (`GROUPS`, issue 20), each drawn by the same `draw_users` over a subset of the
properties: "all" (every property of PROPERTIES, 80 % with a length taste: the populations
above), "form" (list / code / header / asks-back presence and the length taste), "content"
(the README's content-only users: the lexicon properties, no length taste) and "wording".

The wording users (`WORDING`, issue 20): tastes over HOW an answer is worded, with no length
taste: how tentative or assertive, apologetic, personal (first person), directive, empathic,
formally connected, intense, and how many long words it uses. Their properties are counts
(log1p, standardised over the world) of whole words of the ASCII-lower-cased text ("\u2019"
read as "'") from the lexicons below, and of words of >= 10 ASCII letters. They are built so
that they do NOT grade the world's own form variants: no lexicon word is a word that any of
`VARIANTS` inserts (checked by `wording_inserted_words` in the tests), and every inserted
word has < 10 letters, so a variant's wording counts equal those of the answer it was made
from, or are lower where a variant drops sentences ("short"). What separates two answers for
a wording user is the wording of the written answers themselves (the demo corpus' answers,
HH-RLHF's chosen and rejected), never a phrase a variant pasted in: a feature that merely
detects the variants' phrases (a hashed view sees them verbatim) gains nothing from it. The
lexicons were written before any feature was measured on these users, and are not what any
candidate view computes: words are matched on whole words with apostrophes ("i've"), which no
view tokenises the same way, and the long-word count sums over an open vocabulary.

The style block (`style_block`, a CANDIDATE feature, issue 11 item 2): cheap answer-form counts
(lengths in Unicode code points), standardised with statistics of the train answers.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
from edge_omd_bench.streams import DEFAULT_HH_DIR as HH_DIR  # noqa: E402 (one place for the data folder)


# ============================================================== text helpers =================
_SENT = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\S+")
_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text.strip()) if s.strip()]


def n_words(text: str) -> int:
    return len(_WORD.findall(text))


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != "I " and s[:2] != "I'" else s


# ============================================================== form variants ================
def v_shorten(t: str) -> Optional[str]:
    s = sentences(t)
    if len(s) < 2:
        return None
    out = s[0]
    if n_words(out) < 6 and len(s) > 1:
        out += " " + s[1]
    return out


def v_bullets(t: str) -> Optional[str]:
    s = sentences(t)
    if len(s) < 3:
        return None
    return s[0] + "\n\n" + "\n".join(f"- {x}" for x in s[1:])


def v_numbered(t: str) -> Optional[str]:
    s = sentences(t)
    if len(s) < 3:
        return None
    return "Here are the main points:\n\n" + "\n".join(f"{i}. {x}" for i, x in enumerate(s, 1))


def v_hedge(t: str) -> str:
    return ("I'm not entirely sure, but I think " + _lower_first(t.strip())
            + " That said, it may depend on your situation.")


def v_polite(t: str) -> str:
    return ("Thank you for your question. " + t.strip()
            + " I hope this helps, and please let me know if you have any other questions.")


def v_enthusiastic(t: str) -> str:
    s = sentences(t)
    body = " ".join(x[:-1] + "!" if x.endswith(".") else x for x in s)
    return "Great question! " + body + " You've got this!"


def v_header(t: str) -> str:
    s = sentences(t)
    if len(s) >= 2:
        return "## Answer\n\n" + s[0] + "\n\n## Details\n\n" + " ".join(s[1:])
    return "## Answer\n\n" + t.strip()


def v_example(t: str) -> str:
    return (t.strip() + " For example, many people start with a small first step, "
            "such as trying it once and adjusting from there.")


def v_ask_back(t: str) -> str:
    return t.strip() + " Could you tell me a bit more about what you are trying to do?"


VARIANTS = {"short": v_shorten, "bullets": v_bullets, "numbered": v_numbered, "hedge": v_hedge,
            "polite": v_polite, "enthusiastic": v_enthusiastic, "header": v_header,
            "example": v_example, "ask_back": v_ask_back}


# ============================================================== hidden properties ============
LEXICONS = {
    "hedging": ("might", "perhaps", "maybe", "not entirely sure", "i think", "may ", "could be",
                "possibly", "it depends", "generally", "probably", "not sure"),
    "polite": ("please", "thank", "hope this helps", "happy to help", "glad", "you're welcome",
               "sorry to hear"),
    "casual": ("!", "awesome", "great", "super", "pretty ", "basically", "totally", "cool",
               "easy one", "you've got this", "stuff"),
    "examples": ("for example", "for instance", "such as", "e.g.", "like this"),
    "refusal": ("i'm sorry", "i can't", "i cannot", "i won't", "not able to", "i don't know",
                "i'm not sure what", "i do not"),
    "tech": ("python", "code", "function", "file", "computer", "data", "software", "program",
             "command", "install", "list", "string", "app", "website", "online"),
    "health": ("health", "doctor", "food", "eat", "diet", "sleep", "exercise", "body", "water",
               "pain", "medical", "cook", "recipe"),
    "safety": ("safe", "careful", "risk", "danger", "illegal", "legal", "police", "professional",
               "harm", "warning", "caution"),
    "money": ("money", "pay", "price", "cost", "budget", "save", "buy", "bank", "dollar", "$"),
}
#: the columns of `hidden_properties` (before the per-user length term)
PROPERTIES = ("has_list", "has_code", "has_header", "asks_back") + tuple(LEXICONS)

#: wording tastes (module docstring): whole-word lexicons disjoint from what VARIANTS insert
WORDING_LEXICONS = {
    "tentative": ("might", "perhaps", "maybe", "possibly", "probably", "likely", "unlikely",
                  "somewhat", "seems", "seem", "guess", "usually", "typically", "generally"),
    "assertive": ("always", "never", "must", "exactly", "definitely", "absolutely", "certainly",
                  "clearly", "indeed", "obviously", "surely", "guaranteed", "undoubtedly"),
    "apologetic": ("sorry", "unfortunately", "afraid", "apologize", "apologise", "apologies",
                   "regret", "regrettably"),
    "personal": ("my", "mine", "myself", "i've", "i'd", "i'll", "personally", "we", "our",
                 "ours", "us", "we're", "we've", "we'd"),
    "directive": ("should", "recommend", "suggest", "avoid", "important", "need", "needs",
                  "try", "consider", "shouldn't", "don't"),
    "empathic": ("understand", "feel", "feeling", "feelings", "glad", "love", "care", "sounds",
                 "happy", "wonderful", "appreciate"),
    "connective": ("however", "therefore", "although", "specifically", "additionally",
                   "moreover", "furthermore", "thus", "whereas", "consequently", "instead",
                   "rather", "nevertheless"),
    "intense": ("really", "very", "extremely", "incredibly", "highly", "quite", "truly",
                "seriously"),
}
LONG_WORD = 10       # "long_words": words of at least this many ASCII letters
WORDING = tuple(WORDING_LEXICONS) + ("long_words",)
_WORDING_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _count(text_lower: str, words: Sequence[str]) -> int:
    return sum(text_lower.count(w) for w in words)


def raw_properties(text: str) -> list[float]:
    """The hidden properties of one answer, unstandardised (see PROPERTIES)."""
    lines = text.splitlines()
    low = text.lower()
    has_list = float(sum(1 for ln in lines if _LIST_LINE.match(ln)) >= 2)
    has_code = float("```" in text)
    has_header = float(any(ln.lstrip().startswith("#") for ln in lines))
    s = sentences(text.replace("```", " "))
    asks_back = float(bool(s) and s[-1].endswith("?"))
    lex = [math.log1p(_count(low, LEXICONS[k])) for k in LEXICONS]
    return [has_list, has_code, has_header, asks_back] + lex


def hidden_properties(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(S, log_words): S (n, len(PROPERTIES)) standardised over `texts`; log word counts (n,)."""
    S = np.array([raw_properties(t) for t in texts], np.float64)
    sd = S.std(0)
    S = (S - S.mean(0)) / np.where(sd > 0, sd, 1.0)
    lw = np.log(np.maximum(1, np.array([n_words(t) for t in texts], np.float64)))
    return S, lw


def wording_words(text: str) -> list[str]:
    """Whole words of `text` for the wording properties: ASCII letters lower-cased (only A-Z),
    U+2019 read as an apostrophe, runs of a-z joined by inner apostrophes ("i've")."""
    return _WORDING_WORD.findall(text.translate(_ASCII_LOWER).replace("\u2019", "'"))


def wording_raw(text: str) -> list[float]:
    """The wording properties of one answer, unstandardised (see WORDING)."""
    words = wording_words(text)
    out = []
    for name in WORDING_LEXICONS:
        lex = frozenset(WORDING_LEXICONS[name])
        out.append(math.log1p(sum(1 for w in words if w in lex)))
    long_words = sum(1 for w in words for part in w.split("'") if len(part) >= LONG_WORD)
    return out + [math.log1p(long_words)]


def wording_properties(texts: Sequence[str]) -> np.ndarray:
    """(n, len(WORDING)) wording properties standardised over `texts` (sd 0 -> 1)."""
    S = np.array([wording_raw(t) for t in texts], np.float64).reshape(len(texts), len(WORDING))
    sd = S.std(0)
    return (S - S.mean(0)) / np.where(sd > 0, sd, 1.0)


def wording_inserted_words() -> set[str]:
    """Every word (wording_words) that some VARIANT adds to a text: what no wording lexicon may
    hold (the variants' phrases are fixed; a neutral source text shows all of them)."""
    src = "Alpha beta gamma delta. Epsilon zeta eta theta. Iota kappa lambda mu. Nu xi omicron pi."
    base = set(wording_words(src))
    out: set[str] = set()
    for fn in VARIANTS.values():
        t = fn(src)
        if t:
            out |= set(wording_words(t)) - base
    return out


# ============================================================== the style block ==============
STYLE_FEATURES = ("log_codepoints", "log_lines", "list_items", "headers", "code_blocks",
                  "questions", "exclamations", "digit_ratio", "upper_ratio", "log_words_per_sentence",
                  "bold", "paragraphs")


def style_raw(text: str) -> list[float]:
    """Answer-form counts of one response (lengths in Unicode code points: len() of a str)."""
    n = len(text)
    lines = text.splitlines() or [""]
    s = sentences(text) or [text]
    return [
        math.log1p(n),
        math.log1p(len(lines)),
        math.log1p(sum(1 for ln in lines if _LIST_LINE.match(ln))),
        math.log1p(sum(1 for ln in lines if ln.lstrip().startswith("#"))),
        float(text.count("```") // 2),
        math.log1p(text.count("?")),
        math.log1p(text.count("!")),
        sum(c.isdigit() for c in text) / max(1, n),
        sum(c.isupper() for c in text) / max(1, n),
        math.log1p(n_words(text) / max(1, len(s))),
        math.log1p(text.count("**") // 2),
        math.log1p(len([p for p in text.split("\n\n") if p.strip()])),
    ]


@dataclass(frozen=True)
class StyleScaler:
    """Standardisation of the style block (statistics of the train answers), times `weight /
    sqrt(n_features)` so the whole block has about `weight` norm next to a unit-norm embedding."""
    mean: np.ndarray
    sd: np.ndarray
    weight: float = 1.0

    @classmethod
    def fit(cls, texts: Sequence[str], weight: float = 1.0) -> "StyleScaler":
        X = np.array([style_raw(t) for t in texts], np.float64)
        sd = X.std(0)
        return cls(X.mean(0), np.where(sd > 0, sd, 1.0), float(weight))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        X = np.array([style_raw(t) for t in texts], np.float64)
        return (X - self.mean) / self.sd * (self.weight / math.sqrt(X.shape[1]))


# ============================================================== the world ====================
@dataclass
class Item:
    id: str
    source: str                    # "demo" or "hh"
    prompt: str
    responses: tuple
    kinds: tuple                   # where each answer comes from ("demo", "hh_chosen", "short", ...)


@dataclass
class World:
    items: list
    train: np.ndarray              # item indices
    test: np.ndarray
    n_cands: int
    # flattened answers: row r of item i is offsets[i] + j
    texts: list = field(default_factory=list)       # response texts, flat
    pairs: list = field(default_factory=list)       # (prompt, response), flat
    S: Optional[np.ndarray] = None                  # hidden properties (n, K), standardised
    log_words: Optional[np.ndarray] = None
    S_wording: Optional[np.ndarray] = None          # wording properties (n, len(WORDING))

    def __post_init__(self):
        self.texts = [r for it in self.items for r in it.responses]
        self.pairs = [(it.prompt, r) for it in self.items for r in it.responses]
        self.S, self.log_words = hidden_properties(self.texts)
        self.S_wording = wording_properties(self.texts)

    def rows(self, i: int) -> np.ndarray:
        return np.arange(i * self.n_cands, (i + 1) * self.n_cands)

    def key(self) -> str:
        h = hashlib.sha256()
        for p, r in self.pairs:
            h.update(p.encode() + b"\0" + r.encode() + b"\1")
        return h.hexdigest()[:16]


def _load_demo() -> list[dict]:
    from importlib import resources
    return json.loads(resources.files("edge_omd.data").joinpath("demo_corpus.json")
                      .read_text("utf-8"))["prompts"]


def load_hh_single_turn(n: int, hh_dir: str = HH_DIR, split: str = "helpful-base"
                        ) -> list[tuple[str, str, str]]:
    """(human prompt, chosen, rejected) of single-turn HH-RLHF pairs with two different answers
    of 5..250 words, in file order."""
    path = os.path.join(hh_dir, f"{split}-test.jsonl.gz")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            c, r = o["chosen"], o["rejected"]
            if c.count("Human:") != 1 or r.count("Human:") != 1:
                continue
            k = c.rfind("\n\nAssistant:")
            if k < 0 or not r.startswith(c[:k]):
                continue
            prompt = c[:k].replace("\n\nHuman:", "").strip()
            a, b = c[k + 12:].strip(), r[k + 12:].strip()
            if a == b or not (5 <= n_words(a) <= 250 and 5 <= n_words(b) <= 250) or not prompt:
                continue
            out.append((prompt, a, b))
            if len(out) >= n:
                break
    return out


def _fill(rng, base: list[tuple[str, str]], sources: list[str], n: int) -> list[tuple[str, str]]:
    """Add form variants of `sources` texts to `base` until it has n distinct answers."""
    out = list(base)
    seen = {t for t, _ in out}
    names = list(VARIANTS)
    tries = [(s, v) for s in sources for v in names]
    for j in rng.permutation(len(tries)):
        if len(out) >= n:
            break
        src, name = tries[j]
        t = VARIANTS[name](src)
        if t and t not in seen:
            out.append((t, name))
            seen.add(t)
    return out


def build_world(*, n_hh: int = 150, n_demo: Optional[int] = None, n_cands: int = 6,
                test_fraction: float = 0.4, seed: int = 0, hh_dir: str = HH_DIR) -> World:
    """The prompts and candidates (deterministic in `seed`; see the module docstring)."""
    rng = np.random.default_rng([seed, 1101])
    items: list[Item] = []
    demo = _load_demo()
    if n_demo is not None:
        demo = demo[:n_demo]
    for p in demo:
        resp = [r["text"] for r in p["responses"]]
        pick = [resp[j] for j in rng.choice(len(resp), size=min(n_cands - 1, len(resp)), replace=False)]
        cands = _fill(rng, [(t, "demo") for t in pick], [pick[int(rng.integers(len(pick)))]], n_cands)
        if len(cands) < n_cands:
            continue
        items.append(_item(rng, f"demo:{p['id']}", "demo", p["prompt"], cands))
    if n_hh:
        for k, (prompt, a, b) in enumerate(load_hh_single_turn(n_hh, hh_dir)):
            cands = _fill(rng, [(a, "hh_chosen"), (b, "hh_rejected")], [a, b], n_cands)
            if len(cands) < n_cands:
                continue
            items.append(_item(rng, f"hh:{k}", "hh", prompt, cands))
    test = []
    for src in ("demo", "hh"):
        idx = [i for i, it in enumerate(items) if it.source == src]
        perm = np.random.default_rng([seed, 1102, len(src)]).permutation(idx)
        test += list(perm[:int(round(test_fraction * len(idx)))])
    test = np.array(sorted(test), np.int64)
    train = np.setdiff1d(np.arange(len(items)), test)
    return World(items, train, test, n_cands)


def _item(rng, iid, source, prompt, cands) -> Item:
    order = rng.permutation(len(cands))     # no source sits at a fixed index (ties break by index)
    return Item(iid, source, prompt, tuple(cands[j][0] for j in order), tuple(cands[j][1] for j in order))


# ============================================================== users ========================
@dataclass(frozen=True)
class PopulationConfig:
    """How a population of users is drawn (the design population's settings by default)."""
    p_length: float = 0.8          # share of users with a length taste
    p_target: float = 0.5          # ... of which peaked at a target word count (else monotone)
    p_short: float = 0.7           # monotone length tastes that prefer short answers
    n_props: tuple = (2, 3, 4)     # how many other properties a user weighs
    temperature: tuple = (0.2, 0.6)   # Bradley-Terry temperature, uniform in this range
    idiosyncratic: float = 0.2     # sd of the per-answer utility no property explains
    properties: Optional[tuple] = None   # names of PROPERTIES or WORDING a user may weigh
                                         # (None: all of PROPERTIES)


#: the user groups reported separately (module docstring); "all" is the populations' default
GROUPS = {
    "all": PopulationConfig(),
    "form": PopulationConfig(properties=("has_list", "has_code", "has_header", "asks_back")),
    "content": PopulationConfig(properties=("hedging", "polite", "examples", "refusal", "tech",
                                            "health", "safety", "money"), p_length=0.0),
    "wording": PopulationConfig(properties=WORDING, p_length=0.0),
}


@dataclass
class User:
    id: int
    w: np.ndarray                  # (K + len(WORDING),) weights on the standardised
                                   # PROPERTIES, then WORDING
    w_len: float
    len_kind: str                  # "none", "short", "long", "target"
    target_log_words: float
    temperature: float
    u: np.ndarray                  # utility of every answer of the world (flat)
    thumb_threshold: float         # median utility over the train answers

    def describe(self) -> str:
        names = PROPERTIES + WORDING
        ws = ", ".join(f"{names[k]}={v:+.2f}" for k, v in enumerate(self.w) if v)
        ln = {"none": "", "short": "short", "long": "long",
              "target": f"~{math.exp(self.target_log_words):.0f} words"}[self.len_kind]
        return f"user {self.id}: {ln + ' ' if ln else ''}{ws} T={self.temperature:.2f}"


def _length_term(kind: str, log_words: np.ndarray, target: float) -> np.ndarray:
    if kind == "none":
        return np.zeros_like(log_words)
    if kind == "target":
        x = -np.abs(log_words - target)
    else:
        x = -log_words if kind == "short" else log_words
    return (x - x.mean()) / max(x.std(), 1e-12)


def draw_users(world: World, population_seed: int, n: int,
               cfg: PopulationConfig = PopulationConfig()) -> list[User]:
    K = world.S.shape[1]
    names = PROPERTIES + WORDING
    unknown = set(cfg.properties or ()) - set(names)
    if unknown:
        raise ValueError(f"unknown properties {sorted(unknown)}; choose from {', '.join(names)}")
    train_rows = np.concatenate([world.rows(i) for i in world.train])
    users = []
    for k in range(n):
        rng = np.random.default_rng([population_seed, 2203, k])
        w = np.zeros(K + len(WORDING))
        allowed = np.arange(K) if cfg.properties is None else np.array(
            [names.index(p) for p in cfg.properties])
        m = min(int(rng.choice(cfg.n_props)), len(allowed))
        for j in rng.choice(allowed, size=m, replace=False):
            w[j] = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5)
        kind, target, w_len = "none", 0.0, 0.0
        if rng.random() < cfg.p_length:
            w_len = rng.uniform(0.5, 1.5)
            if rng.random() < cfg.p_target:
                kind, target = "target", float(rng.uniform(math.log(10), math.log(150)))
            else:
                kind = "short" if rng.random() < cfg.p_short else "long"
        T = float(rng.uniform(*cfg.temperature))
        u = world.S @ w[:K] + w_len * _length_term(kind, world.log_words, target)
        if np.any(w[K:]):
            u = u + world.S_wording @ w[K:]
        u = u + cfg.idiosyncratic * rng.standard_normal(u.shape)
        users.append(User(k, w, w_len, kind, target, T, u, float(np.median(u[train_rows]))))
    return users
