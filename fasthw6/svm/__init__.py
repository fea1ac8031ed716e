"""The hard-margin support vector machine of question 3, solved in the dual."""
from .api import HardMarginSVC, NotSeparableError

__all__ = ["HardMarginSVC", "NotSeparableError"]
