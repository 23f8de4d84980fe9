"""Worksheet content: sample generation, content-release reading, and the multimodal worksheet dataset."""
