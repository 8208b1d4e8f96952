"""`supervisor run`: the owner loop, the fleet and its slots, processes and the reaper, the
worker channel, commands, status, events, state, systemd notify, output and log files, the
autoscaler, the plugin host, and the helper processes.
"""
