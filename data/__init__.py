"""Everything about rows: the DuckDB store, datasets, import, synthetic data and features."""
