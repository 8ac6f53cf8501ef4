"""Models: the detector interface and backends, runs, evaluation and tuning.

The backends register themselves in `detectors.base.REGISTRY` when `detectors.backends` is
imported; `detectors.base.registered()` does that on first use. Importing this package loads
neither, so the command line parses its arguments without scipy and PyOD (a second at start).
"""
