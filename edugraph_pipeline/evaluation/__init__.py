"""Evaluation of the labeller: metrics, baseline, reports for Dagster metadata and the publication gate."""
