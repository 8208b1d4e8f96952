"""The supervisor's helper processes: the guardian and the fork server, and their handles."""
