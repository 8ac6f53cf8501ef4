"""Where Centinela plugs into systems a bank already runs: Kafka, webhooks, MLflow."""
