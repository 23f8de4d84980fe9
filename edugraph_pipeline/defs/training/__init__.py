"""The `training` asset group: base_model, knowledge_adapter, trained_adapter, and where their step runs."""
