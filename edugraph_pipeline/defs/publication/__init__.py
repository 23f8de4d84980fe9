"""The `publication` asset group: the model, its GGUF files and the datasets on the Hugging Face Hub."""
