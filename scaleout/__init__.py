"""Centinela's batch work on Apache Spark: the workbench's features, models and alerts over a data lake.

Imports pyspark (an optional dependency, `requirements-spark.txt`) only here, so the workbench
runs without it.
"""
