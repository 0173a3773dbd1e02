"""mergeval: is the merged checkpoint better than its parents?

Library entry points (the CLI is a view over these):
    mergeval.evaluate(models, suite="smoke" | "leaderboard-v1", ...) -> EvalResult
    mergeval.read_results(store, suite=...) -> EvalResult          (no model is loaded)
    mergeval.resolve(reference) -> ModelRef                         (fingerprinted model reference)
"""

__version__ = "0.1.0"

from mergeval.errors import UserError  # noqa: E402
from mergeval.evaluation import EvalResult, evaluate, read_results  # noqa: E402
from mergeval.models import ModelRef, resolve  # noqa: E402
from mergeval.store import Store  # noqa: E402

__all__ = ["EvalResult", "ModelRef", "Store", "UserError", "evaluate", "read_results", "resolve", "__version__"]
