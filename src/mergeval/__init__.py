"""mergeval: is the merged checkpoint better than its parents?"""

__version__ = "0.1.0"
