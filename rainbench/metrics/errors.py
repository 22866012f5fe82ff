"""The error every metric failure raises (unknown name, bad input, missing NIQE model)."""

from __future__ import annotations


class MetricError(ValueError):
    """A metric cannot be created or cannot score the given images."""
