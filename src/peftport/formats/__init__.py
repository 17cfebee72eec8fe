"""Formats: thin codecs between files (peft, AdapterHub) and the neutral `PeftModule`."""
