"""Inference: the merged model as a classifier, answer repair, and the `edugraph classify` command."""
