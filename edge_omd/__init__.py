"""edge-omd: on-device personalization by one-pass online reward modeling.

    >>> from edge_omd import RewardModel
    >>> model = RewardModel(384, budget_bytes=2 << 20)
    >>> model.learn_pair(phi_chosen, phi_rejected)      # doctest: +SKIP

The public names, nothing else (tests/runtime/test_imports.py checks it). Imports numpy and
numba only; the feature head needs onnxruntime + tokenizers (extra `head`), loaded when
`FeatureHead` is first used; the exporter (extra `export`) is the only part that needs torch.
"""
from edge_omd.errors import (BudgetError, ConfigError, EdgeOMDError, ExportError, HeadError,
                             HeadMismatchError, InvalidInputError, NumericalError,
                             StateFormatError, StoreError, TruncationWarning)
from edge_omd.options import PersonalizerOptions
from edge_omd.personalizer import Personalizer, Query, Ranked
from edge_omd.prior import Prior, fit_prior
from edge_omd.reward_model import RewardModel
from edge_omd.store import FolderStore, SQLiteStore, Store, StoreRecord, UserIdError

__version__ = "0.1.0"

__all__ = [
    "EdgeOMDError", "InvalidInputError", "ConfigError", "BudgetError", "StateFormatError",
    "HeadMismatchError", "HeadError", "ExportError", "StoreError", "NumericalError",
    "TruncationWarning", "UserIdError",
    "RewardModel", "FeatureHead", "Personalizer", "PersonalizerOptions", "Ranked", "Query",
    "Prior", "fit_prior",
    "Store", "StoreRecord", "SQLiteStore", "FolderStore",
]


def __getattr__(name):
    # FeatureHead's module is light (onnxruntime + tokenizers load in FeatureHead.open), but
    # it is still only imported when asked for.
    if name == "FeatureHead":
        from edge_omd.head.runner import FeatureHead
        return FeatureHead
    raise AttributeError(f"module 'edge_omd' has no attribute {name!r}")
