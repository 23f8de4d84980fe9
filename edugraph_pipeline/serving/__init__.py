"""Serving the classifier over HTTP (`edugraph serve`): the ASGI app, request batching, metrics, upload checks.

Plain Python (FastAPI + uvicorn + prometheus-client): no Dagster import. Classification is the `classify` path
of `edugraph_pipeline.inference` (and `edugraph_pipeline.gguf.classify` for GGUF), called on batches of
already-decoded uploads.
"""
