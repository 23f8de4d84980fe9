"""Google Cloud, spoken by plain Python: the one GCS client and ``gs://`` parser (`gcs`), the Compute Engine
training VM's description (`vm`), the Vertex AI CustomJob's (`vertex`) and the project check (`preflight`).

No Dagster, and nothing of the artifact store: `storage` builds on this package, never the other way round.
"""
