"""TOML -> frozen, typed config; every error names its key path."""
