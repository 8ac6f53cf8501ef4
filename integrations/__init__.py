"""Where Centinela plugs into systems a bank already runs: Kafka (more to come)."""
