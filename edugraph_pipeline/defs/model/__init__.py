"""The `model` asset group: merged_model, model_evaluation and its gate, gguf_model."""
