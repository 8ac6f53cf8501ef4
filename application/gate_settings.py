"""What the evaluation gate (`application.models.promote_if_better`) may compare, and its
defaults: apart from `application.models` so that the command line offers them without
loading the models."""

GATE_METRICS = ("average_precision", "roc_auc", "precision_at_k", "card_precision_at_k", "card_precision_at_k_handbook")
DEFAULT_GATE_METRIC, DEFAULT_GATE_DAYS = "average_precision", 7
