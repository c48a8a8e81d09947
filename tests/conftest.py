import os
import sys

# Tests import their naive twins as `tests.naive`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
