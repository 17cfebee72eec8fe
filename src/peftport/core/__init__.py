"""Pure layer: the neutral module representation and tensor math (torch only, no files, no models)."""
