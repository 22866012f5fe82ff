"""Image quality metrics with explicit conventions, on top of pyiqa.

``create_metric(name)`` returns a :class:`Metric` whose ``spec`` records how every score was made.
See docs/metrics.md for the conventions and why published numbers differ.
"""

from rainbench.metrics.errors import MetricError
from rainbench.metrics.metric import Metric, create_metric
from rainbench.metrics.niqe import fit_niqe
from rainbench.metrics.specs import MetricSpec, available_metrics, get_spec

__all__ = ["Metric", "MetricError", "MetricSpec", "available_metrics", "create_metric", "fit_niqe", "get_spec"]
