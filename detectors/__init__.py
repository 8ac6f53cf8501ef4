"""Models: the detector interface, backends, runs, evaluation, explanations and retraining.

Empty until the detectors issue lands; the package exists so the layout is fixed from the start.
"""
