"""The wire format: message kinds (the plugins' too), msgpack batches, limits, and sockets.

Shared by the SDK, the CLI and the daemon; it imports nothing of ours but `supervisor.errors`.
"""
