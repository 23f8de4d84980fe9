"""Training: profiles and placement, the tiny base, the SFT stages, merge, and the step's entry point."""
