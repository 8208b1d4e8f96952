"""Example bots shipped with supervisor; `supervisor.toml` runs them."""
