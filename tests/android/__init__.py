"""Tests of the Java core (android_demo/core) on the JVM, and of the parity table.

Every test that compiles or runs Java carries `JAVA`: the `java` mark (deselected in the
NUMBA_DISABLE_JIT pass of scripts/test.sh, which has nothing to learn from Java) and a skip
without javac/java. That skip is NOT allowed by tests/conftest.py, so without a JDK these tests
FAIL, naming the missing JDK: a JDK 17 is part of the test setup, like the export extra.
"""
import shutil

import pytest

JAVA = [pytest.mark.java,
        pytest.mark.skipif(not (shutil.which("javac") and shutil.which("java")),
                           reason="javac/java not installed: install a JDK 17 (tests/android "
                                  "need it; tests/conftest.py turns this skip into a failure)")]
