"""Reports: human-facing summaries of modules and runs (tables, later plots)."""
