"""Pipelines: the jobs users run (transfer, demo), built from the layers below."""
