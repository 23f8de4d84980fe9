"""The EduGraph pipeline: ontology and worksheet releases -> a fine-tuned, evaluated, published labeller (README.md)."""
