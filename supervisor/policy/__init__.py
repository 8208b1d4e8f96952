"""Pure decisions: restart and backoff, health, reconcile, reload plan, scaling.

Functions of (state, inputs, now): no os, psutil, zmq, anyio or clock in here.
"""
