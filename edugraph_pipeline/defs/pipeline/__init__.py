"""The whole pipeline: full_pipeline_job and newest_release_schedule."""
