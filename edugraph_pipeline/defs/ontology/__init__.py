"""The `ontology` asset group: ontology_release, knowledge_dataset, the release remote, sensor and job."""
