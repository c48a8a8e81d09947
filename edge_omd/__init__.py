"""edge-omd: on-device personalization by one-pass online reward modeling.

    >>> from edge_omd import RewardModel
    >>> model = RewardModel(384, budget_bytes=2 << 20)
    >>> model.learn_pair(phi_chosen, phi_rejected)      # doctest: +SKIP

Imports numpy and numba only; the feature head needs onnxruntime + tokenizers (extra
`head`); the exporter (extra `export`) is the only part that needs torch.
"""
from edge_omd.errors import (BudgetError, ConfigError, EdgeOMDError, ExportError, HeadError,
                             HeadMismatchError, InvalidInputError, NumericalError,
                             StateFormatError, StoreError, TruncationWarning)

__version__ = "0.1.0"

__all__ = [
    "EdgeOMDError", "InvalidInputError", "ConfigError", "BudgetError", "StateFormatError",
    "HeadMismatchError", "HeadError", "ExportError", "StoreError", "NumericalError",
    "TruncationWarning",
]

from edge_omd.reward_model import RewardModel  # noqa: E402

__all__ += ["RewardModel"]


def __getattr__(name):
    # The feature head pulls in onnxruntime + tokenizers: import it only when asked for.
    if name == "FeatureHead":
        from edge_omd.head.runner import FeatureHead
        return FeatureHead
    raise AttributeError(f"module 'edge_omd' has no attribute {name!r}")

from edge_omd.personalizer import Personalizer, Query, Ranked  # noqa: E402
from edge_omd.store import FolderStore, SQLiteStore, Store, StoreRecord, UserIdError  # noqa: E402

__all__ += ["Personalizer", "Ranked", "Query", "Store", "StoreRecord", "SQLiteStore",
            "FolderStore", "UserIdError"]
