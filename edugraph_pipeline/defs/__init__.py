"""Every Dagster object of the code location, one package per asset group (loaded by `definitions.py`)."""
