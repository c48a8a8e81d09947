"""docs/PARITY.md against the code: every public member of RewardModel and Personalizer and every
journal record kind has a row (and no row names one that is gone); every Java class and method a
row names exists in android_demo/core; every test a row names exists (pytest `file::function`,
Java `Class.method` under core/src/test). A deprecated old name (edge_omd/_deprecated.py) has a
row "deprecated: `new name`" instead, whose new name has a row of its own. No JDK needed: the
Java side is read as source."""
import inspect
import os
import re

import pytest

from edge_omd import RewardModel
from edge_omd.store import journal
from edge_omd.personalizer import Personalizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE = os.path.join(ROOT, "docs", "PARITY.md")
PKG = os.path.join("android_demo", "core", "src", "{}", "java", "dev", "edgeomd")
NOT_ON_PHONE = "not on the phone:"
DEPRECATED = "deprecated:"
_TICK = re.compile(r"`([^`]+)`")
_PYTEST = re.compile(r"^([\w/.-]+\.py)::(\w+)$")
_JAVA_REF = re.compile(r"^([A-Z]\w*)(?:\.(\w+)|\((\w*)\))$")  # Class.member or Class(Arg)


def python_verbs():
    """What the table must cover: the constructors, every public member (methods, properties)
    of RewardModel and Personalizer, and every journal record kind."""
    out = set()
    for cls in (RewardModel, Personalizer):
        out.add(f"{cls.__name__}()")
        out |= {f"{cls.__name__}.{n}" for n in vars(cls) if not n.startswith("_")}
    out |= {f"journal.{n}" for n, _v in inspect.getmembers(journal) if n.startswith("KIND_")}
    return out


def deprecated_verbs():
    """The public members that are deprecated old names (their docstring says so)."""
    return {f"{cls.__name__}.{n}" for cls in (RewardModel, Personalizer)
            for n, v in vars(cls).items()
            if not n.startswith("_")
            and (getattr(v, "__doc__", None) or "").startswith("Deprecated:")}


def rows(text):
    """[(python cell, java cell, tests cell)] of the table rows (header rows skipped); a row
    that does not have three cells comes back as one cell, which `check` reports."""
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or set(cells[0]) <= set("-: ") or cells[0] == "Python":
            continue
        out.append(tuple(cells) if len(cells) == 3 else (line,))
    return out


def _python_key(cell):
    """The verb a row's Python cell names: `X(...)` -> X(), `X.y` -> X.y, a record kind ->
    journal.KIND_*; None if none."""
    kind = re.search(r"`(journal\.KIND_\w+)", cell)
    if kind:
        return kind.group(1)
    ticks = _TICK.findall(cell)
    if not ticks:
        return None
    m = re.match(r"^(\w+)\(.*\)$", ticks[0])
    return f"{m.group(1)}()" if m else ticks[0]


def _java_source(kind, cls):
    path = os.path.join(ROOT, PKG.format(kind), f"{cls}.java")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def _declares(src, cls, member, ctor_arg):
    """Does the Java source declare `member` (a method or field of the class: 4 spaces in, not
    a local variable; or a nested class) or, for `Class(Arg)`, a constructor of cls taking an
    Arg first?"""
    mods = r"^ {4}(?:(?:public|protected|private|static|final|abstract|synchronized)\s+)*"
    if ctor_arg is not None:
        return re.search(mods + rf"{cls}\s*\(\s*{ctor_arg}\b", src, re.M) is not None
    return (re.search(mods + rf"[\w.<>\[\], ]+?\s+{member}\s*[(;=,]", src, re.M) is not None
            or re.search(rf"\b(?:class|interface)\s+{member}\b", src) is not None)


def _java_problems(cell, kind, where):
    problems, refs = [], []
    for tick in _TICK.findall(cell):
        m = _JAVA_REF.match(tick)
        if not m or not (m.group(2) or m.group(3) is not None):
            continue
        refs.append(tick)
        cls, member, arg = m.group(1), m.group(2), m.group(3)
        src = _java_source(kind, cls)
        if src is None:
            problems.append(f"{where}: no Java class {cls} in core/src/{kind}")
        elif not _declares(src, cls, member, arg):
            problems.append(f"{where}: {cls}.java declares no {member or cls + '(' + arg + ')'}")
    return problems, refs


def check(text):
    """Everything wrong with the table `text` (an empty list: it matches the code)."""
    problems, seen, replaced_by = [], {}, {}
    verbs, deprecated = python_verbs(), deprecated_verbs()
    for row in rows(text):
        if len(row) != 3:
            problems.append(f"not a row of three cells: {row[0][:80]!r}")
            continue
        py, java, tests = row
        key = _python_key(py)
        if key is None:
            problems.append(f"row {py!r}: names no Python verb")
            continue
        if key in seen:
            problems.append(f"{key}: two rows")
        seen[key] = True
        if key not in verbs and not key.startswith("journal.Newer"):
            problems.append(f"{key}: a row for a Python verb that does not exist")
        if java.startswith(DEPRECATED) or key in deprecated:
            new = _TICK.findall(java)
            if not java.startswith(DEPRECATED) or not new:
                problems.append(f"{key}: a deprecated name's row says 'deprecated: `new name`'")
            elif key not in deprecated:
                problems.append(f"{key}: a row says deprecated, the code does not")
            else:
                replaced_by[key] = new[0]
            continue
        if java.startswith(NOT_ON_PHONE):
            if len(java) - len(NOT_ON_PHONE) < 20:
                problems.append(f"{key}: 'not on the phone' without a reason")
            continue
        found, refs = _java_problems(java, "main", key)
        problems += found
        if not refs:
            problems.append(f"{key}: neither a Java method nor 'not on the phone: why'")
        pytests = 0
        for tick in _TICK.findall(tests):
            m = _PYTEST.match(tick)
            if m:
                pytests += 1
                path = os.path.join(ROOT, m.group(1))
                if not os.path.exists(path):
                    problems.append(f"{key}: no test file {m.group(1)}")
                    continue
                with open(path, encoding="utf-8") as f:
                    if not re.search(rf"^def {m.group(2)}\(", f.read(), re.M):
                        problems.append(f"{key}: {m.group(1)} has no test {m.group(2)}")
        problems += _java_problems(tests, "test", key)[0]
        if not pytests:
            problems.append(f"{key}: no test named")
    problems += [f"{v}: no row" for v in sorted(verbs - set(seen))]
    problems += [f"{old}: deprecated for {new}, which has no row"
                 for old, new in sorted(replaced_by.items())
                 if new not in seen or new in replaced_by]
    return problems


def _table():
    with open(TABLE, encoding="utf-8") as f:
        return f.read()


def test_parity_table_matches_the_code():
    problems = check(_table())
    assert not problems, "docs/PARITY.md is out of date:\n" + "\n".join(problems)
    assert len(rows(_table())) >= len(python_verbs())


@pytest.mark.parametrize("edit, expect", [
    (lambda t: re.sub(r"^\| `Personalizer\.pick` \|.*\n", "", t, flags=re.M),
     "Personalizer.pick: no row"),
    (lambda t: re.sub(r"^\| `Personalizer\.choose` \|.*\n", "", t, flags=re.M),
     "Personalizer.choose: no row"),
    (lambda t: t.replace("| `Personalizer.choose` | deprecated:",
                         "| `Personalizer.choose` | was:", 1),
     "Personalizer.choose: a deprecated name's row says"),
    (lambda t: t.replace("| `Personalizer.prefer` | ", "| `Personalizer.prefer` | deprecated: ", 1),
     "Personalizer.prefer: a row says deprecated, the code does not"),
    (lambda t: re.sub(r"^\| `Personalizer\.pair_to_show` \|.*\n", "", t, flags=re.M),
     "Personalizer.choose_pair: deprecated for Personalizer.pair_to_show, which has no row"),
    (lambda t: t.replace("`RewardModel.learnChoice`,", "`RewardModel.learnChoose`,", 1),
     "RewardModel.java declares no learnChoose"),
    (lambda t: t.replace("`GuardTests.greedy`", "`GuardTests.greedyPicks`", 1),
     "GuardTests.java declares no greedyPicks"),
    (lambda t: t.replace("test_python_folder_store_opens_what_java_continued`", "test_gone`", 1),
     "has no test test_gone"),
    (lambda t: re.sub(r"(\| `Personalizer\.export_state` \| )not on the phone:[^|]*",
                      r"\1`UserStore.exportState` ", t),
     "UserStore.java declares no exportState"),
    (lambda t: t.replace("| `RewardModel.copy` | `RewardModel.copy` |", "| `RewardModel.copy` |", 1),
     "not a row of three cells"),
    (lambda t: t + "| `RewardModel.learn_twice` | `RewardModel.learnPair` | "
                   "`tests/android/test_parity.py::test_parity_table_matches_the_code` |\n",
     "RewardModel.learn_twice: a row for a Python verb that does not exist"),
])
def test_the_check_catches_a_stale_table(edit, expect):
    problems = check(edit(_table()))
    assert any(expect in p for p in problems), problems


def test_java_sums_in_the_lanes_of_python():
    """A pack start's phi is summed in Java in lanes_dot's order (ExactState64.startArrays):
    its partial-sum count is Python's, or float32 starts differ in the last bit."""
    from edge_omd import _numba
    with open(os.path.join(ROOT, PKG.format("main"), "Num.java"), encoding="utf-8") as f:
        java = re.search(r"static final int LANES = (\d+);", f.read())
    assert java and int(java.group(1)) == _numba.LANES
