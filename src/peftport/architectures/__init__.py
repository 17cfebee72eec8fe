"""Model knowledge: where each slot lives in each model family, as data files in ``specs/``."""
