"""The fleet's history on disk: the SQLite store the monitor writes and `supervisor analyze` reads.

store.py opens, checks and recovers the file and reads it; writer.py is the one writer thread
the monitor feeds through a bounded queue; analysis.py turns what it reads into the pure
rules' input (`supervisor.policy.analyze`) and baselines.
"""
