"""Probing: the one place that runs models, to collect matched hidden states for alignment."""
