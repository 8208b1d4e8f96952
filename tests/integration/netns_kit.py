"""Two "hosts" on this machine: network namespaces joined by a veth pair, nothing else.

    root namespace (untouched)
    NS_a  veth_a 10.213.N.1/24  <-- veth -->  veth_b 10.213.N.2/24  NS_b
          lo up                                 lo up

The addresses exist only inside the two namespaces; no route leads anywhere
else. `Hosts.close` deletes both namespaces (and so the veth pair) and is
safe to call after a partial set-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def can_make_namespaces() -> str:
    """'' if this machine lets us make namespaces, else why not (a skip reason)."""
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    if os.geteuid() != 0:
        return "needs root for ip netns"
    probe = f"svprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return ""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Hosts:
    def __init__(self) -> None:
        tag = os.getpid() % 100_000
        self.names = {"a": f"sva{tag}", "b": f"svb{tag}"}
        subnet = 1 + tag % 250
        self.addresses = {"a": f"10.213.{subnet}.1", "b": f"10.213.{subnet}.2"}
        self._made: list[str] = []

    def open(self) -> Hosts:
        veth = {h: f"v{h}{os.getpid() % 100_000}" for h in ("a", "b")}
        for ns in self.names.values():
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        # Made inside a's namespace, so it never appears in the root one.
        _ip("-n", self.names["a"], "link", "add", veth["a"], "type", "veth", "peer", "name",
            veth["b"], "netns", self.names["b"])  # fmt: skip
        for host, ns in self.names.items():
            _ip("-n", ns, "addr", "add", f"{self.addresses[host]}/24", "dev", veth[host])
            _ip("-n", ns, "link", "set", veth[host], "up")
        return self

    def wrap(self, host: str) -> list[str]:
        """The command prefix that runs something on `host`."""
        return ["ip", "netns", "exec", self.names[host]]

    def close(self) -> None:
        for ns in self._made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self._made.clear()
