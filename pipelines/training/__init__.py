"""Training and evaluation helpers shared by the demo models (synthetic data only)."""
