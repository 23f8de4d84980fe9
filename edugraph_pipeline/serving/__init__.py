"""Serving the classifier over HTTP (`edugraph serve`): the ASGI app, request batching, metrics, upload checks.

Plain Python (FastAPI + uvicorn + prometheus-client): no Dagster import. Classification is `Classifier.classify`
of `edugraph_pipeline.inference` (either backend: transformers or llama.cpp), called on batches of
already-decoded uploads.
"""
