"""What a bot loads: the worker link, the cache and pool clients, the bot entry.

Nothing here imports the daemon, the CLI or the plugins; a bot pays only for what it uses.
Bots import it through the public paths `supervisor.worker`, `supervisor.cache` and
`supervisor.dbpool`.
"""
