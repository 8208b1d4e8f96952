"""The db_tuning plugin, its config and its pure budget arithmetic."""
