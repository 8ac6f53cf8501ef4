"""What users choose among when they fit a detector or retrain on labels, and the defaults.

Kept apart from the models, with no scikit-learn import (scikit-learn loads scipy: 0.9 s), so
the command line builds its parser without loading them; the modules that implement each
choice import it from here.
"""

MIN_CONTAMINATION, MAX_CONTAMINATION = 0.001, 0.5
DEFAULT_CONTAMINATION = 0.01
DEFAULT_DETECTOR = "isolation_forest"
COMBINE = ("mean", "max", "rank")  # how an ensemble combines its members' scores

MODELS = {"lgbm": "LightGBM", "hgb": "HistGradientBoosting", "rf": "RandomForest"}  # classifiers, by name
IMBALANCE = {"none": "None", "weights": "Class weights", "undersample": "Under-sampling", "smote": "SMOTE"}
DEFAULT_MODEL, DEFAULT_IMBALANCE = "lgbm", "smote"  # chosen by `make bench-quality` (see README)
