"""Models: the detector interface and backends, runs, evaluation and tuning.

Importing the package registers every backend in `detectors.base.REGISTRY`.
"""

from detectors import backends as _backends  # noqa: F401  (registers the backends)
