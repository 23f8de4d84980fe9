"""The test kit: stand-ins for what lies outside the product, for the tests and `bench/` (never the product).

`hub_server` (a local Hugging Face Hub), `hub_models` (folders shaped like the Hub's Qwen3-VL), `gcp` (a GCS
emulator and a fake Compute Engine), `vertex` (a fake Vertex AI), `remotes` (local git release remotes),
`synthetic` (small generated datasets in the pipeline's on-disk shapes) and `serving` (the service on a local port).
"""
