"""Experiments: a YAML grid of teacher training, transfer, and student vs baseline training, run resumably."""
