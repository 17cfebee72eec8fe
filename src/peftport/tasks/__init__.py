"""Labelled task data: readers for CoNLL / TSV / CSV / JSONL files and hub datasets, encodings, metrics."""
