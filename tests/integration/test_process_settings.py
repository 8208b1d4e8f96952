"""env_file, umask, rlimits, user and max_memory_mb, seen from inside real workers."""

from __future__ import annotations

import json
import os
import pwd
import resource
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import REPO, Supervisor, wait_until


def probe_report(directory: Path, bot: str, slot: int = 0) -> dict[str, Any]:
    path = directory / f"{bot}.{slot}.json"
    wait_until(path.exists, what=f"{path.name}")
    report: dict[str, Any] = json.loads(path.read_text())
    return report


@pytest.mark.parametrize("spawn", ["exec", "fork-server"])
def test_env_file_umask_and_rlimits_reach_the_worker(sup: Supervisor, spawn: str) -> None:
    probes = sup.dir / "probes"
    probes.mkdir(mode=0o777)
    (sup.dir / "bot.env").write_text(
        '# comment\nexport PROBE_FROM_FILE=file\nPROBE_QUOTED="a b # not a comment"\n'
        "PROBE_BOTH=file\n"
    )
    nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = min(256, nofile_hard)
    sup.configure(
        f"""
[bots.p]
module = "tests.bots.probe:main"
cwd = "{REPO}"
spawn = "{spawn}"
env_file = "bot.env"
env = {{ PROBE_DIR = "{probes}", PROBE_BOTH = "env" }}
umask = "027"
rlimits = {{ nofile = [{soft}, {nofile_hard}], as = "4GiB", core = 0 }}
"""
    )
    sup.start()
    report = probe_report(probes, "p")
    env = report["env"]
    assert env["PROBE_FROM_FILE"] == "file"
    assert env["PROBE_QUOTED"] == "a b # not a comment"
    assert env["PROBE_BOTH"] == "env"  # `env` wins over the file
    assert report["umask"] == 0o027
    assert report["rlimits"]["nofile"] == [soft, nofile_hard]
    assert report["rlimits"]["as"] == [4 << 30, 4 << 30]
    assert report["rlimits"]["core"] == [0, 0]
    # The supervisor's own limits are untouched.
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[1] == nofile_hard


@pytest.mark.skipif(os.geteuid() != 0, reason="running a worker as another user needs root")
def test_a_worker_runs_as_the_user_it_is_given(sup: Supervisor) -> None:
    """user = "nobody": the worker's uid, gid and groups are nobody's (not ours)."""
    sup.dir.chmod(0o755)  # mkdtemp made it ours alone
    out = sup.dir / "out"
    out.mkdir()
    out.chmod(0o777)
    sup.configure(
        f"""
[bots.p]
command = ["sh", "-c", "id -u > $OUT/ids; id -g >> $OUT/ids; id -G >> $OUT/ids; exec sleep 1000"]
user = "nobody"
env = {{ OUT = "{out}" }}
"""
    )
    sup.start()
    ids = out / "ids"
    wait_until(lambda: ids.exists() and len(ids.read_text().split()) >= 3, what="the ids")
    uid, gid, *groups = ids.read_text().split()
    nobody = pwd.getpwnam("nobody")
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert 0 not in {int(g) for g in groups}  # root's groups were dropped


def test_config_mistakes_in_process_settings_name_their_keys(sup: Supervisor) -> None:
    sup.configure(
        """
[bots.p]
command = ["sleep", "1"]
env_file = "missing.env"
umask = "999"
user = "no-such-user-here"
rlimits = { nofiles = 10, nofile = [20, 10], as = "lots" }
max_memory_mb = -1
"""
    )
    result = sup.cli("check")
    assert result.returncode == 2
    err = result.stderr
    assert "bots.p.env_file: cannot read" in err
    assert "bots.p.umask: expected an octal umask" in err
    assert "bots.p.user: no such user 'no-such-user-here'" in err
    assert 'bots.p.rlimits.nofiles: unknown key; did you mean "nofile"?' in err
    assert "bots.p.rlimits.nofile: the soft limit 20 is above the hard limit 10" in err
    assert "bots.p.rlimits.as: expected" in err
    assert "bots.p.max_memory_mb: expected a number >= 0" in err


LEAKER = f"""
[bots.leak]
module = "tests.bots.leak:main"
cwd = "{REPO}"
env = {{ LEAK_MB_PER_S = "40" }}
max_memory_mb = 80
stop_timeout_s = "2s"
"""


@pytest.mark.parametrize(
    "monitor",
    [
        "",  # the supervisor's own check of /proc
        '[plugins.monitor]\nlisten = ""\ninterval_s = "500ms"\n',  # the monitor's samples
    ],
    ids=["own check", "monitor samples"],
)
def test_a_worker_over_max_memory_mb_is_restarted(sup: Supervisor, monitor: str) -> None:
    sup.configure(LEAKER + monitor)
    sup.start()
    first = sup.wait_running("leak", 1)[0]
    event = wait_until(lambda: sup.events("worker_over_memory"), timeout_s=20, what="a restart")[0]
    assert event["pid"] == first
    assert event["rss_mb"] > 80
    wait_until(lambda: sup.pids("leak").get(0, first) != first, what="a new worker")


def test_max_memory_mb_given_by_a_reload_is_enforced(sup: Supervisor) -> None:
    """With no limit the guard sleeps (no timer); a reload that brings one wakes it."""
    sup.configure(LEAKER.replace("max_memory_mb = 80\n", ""))
    sup.start()
    first = sup.wait_running("leak", 1)[0]
    sup.configure(LEAKER)
    assert sup.cli("reload").returncode == 0
    event = wait_until(lambda: sup.events("worker_over_memory"), timeout_s=20, what="a restart")[0]
    assert event["pid"] == first
