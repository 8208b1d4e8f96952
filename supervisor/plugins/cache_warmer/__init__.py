"""The cache warmer plugin and its pure hot-key planner."""
