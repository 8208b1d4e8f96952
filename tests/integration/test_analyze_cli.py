"""`supervisor analyze` as an operator runs it, on a history written by the store's own code
(no supervisor running): findings and exit codes, bad input, baselines saved and compared."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor.history import store
from tests.integration.harness import REPO

CONFIG = f"""
[supervisor]
run_dir = "run"

[bots.web]
module = "bots.echo:main"
cwd = "{REPO}"
workers = 2

[bots.crashy]
command = ["false"]
"""


def cli(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", "analyze", *args, "-c", str(where / "s.toml")],
        capture_output=True, text=True, timeout=120, cwd=where, check=False,
    )  # fmt: skip


def fleet(where: Path, *, cpu: float, minutes: int = 10, crash: bool = True) -> None:
    """minutes of 1 Hz history ending now: web's two workers at `cpu`, crashy crash-looping."""
    (where / "s.toml").write_text(CONFIG)
    (where / "run").mkdir(exist_ok=True)
    conn, _ = store.open_for_writing(store.path_in(where / "run"))
    now = time.time()
    points, events = [], []
    for i in range(minutes * 60):
        t = now - minutes * 60 + i
        for w in (0, 1):
            points += [(t, ("web", w, "cpu_percent"), cpu + (i * 7 % 5)),
                       (t, ("web", w, "rss_mb"), 40.0 + (i % 3)),
                       (t, ("web", w, "m.jobs_done"), float(i * 10))]  # fmt: skip
        points.append((t, ("", -1, "loop_lag_s"), 0.002))
        if crash and i % 10 == 0:
            events.append((t, "worker_exited", "crashy", 0, '{"exit_code": 1, "uptime_s": 0.2}'))
    store.write(conn, {}, points, events)
    conn.close()


def test_findings_name_the_bot_and_the_exit_code_follows_the_worst(tmp_path: Path) -> None:
    fleet(tmp_path, cpu=97)
    r = cli(tmp_path, "--json", "--since", "10m")
    assert r.returncode == 1, r.stderr  # the crash loop is critical
    found = {(f["rule"], f["bot"]) for f in json.loads(r.stdout)["findings"]}
    assert {("cpu_saturated", "web"), ("restart_hot_spot", "crashy")} <= found
    text = cli(tmp_path, "web", "--since", "10m")
    assert text.returncode == 0, text.stderr  # web alone: a warning at worst
    assert "web: 2 worker(s) CPU-bound" in text.stdout
    assert "set: bots.web.workers = 4" in text.stdout
    assert "crashy" not in text.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("nope",), "unknown bot 'nope'"),
        (("--since", "soon"), "--since: expected a duration"),
        (("--compare", "missing"), "no baseline named 'missing'"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    fleet(tmp_path, cpu=10, minutes=1)
    r = cli(tmp_path, *args)
    assert r.returncode == 1
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1
    assert said in r.stderr


def test_no_store_or_a_foreign_one_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(CONFIG)
    r = cli(tmp_path)
    assert (r.returncode, len(r.stderr.splitlines())) == (1, 1)
    assert "no history at" in r.stderr
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / store.FILENAME).write_bytes(b"garbage" * 1000)
    r = cli(tmp_path)
    assert (r.returncode, len(r.stderr.splitlines())) == (1, 1)
    assert "cannot read the history" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_baseline_compares_beyond_the_noise(tmp_path: Path) -> None:
    fleet(tmp_path, cpu=90, crash=False)
    saved = cli(tmp_path, "--save", "before", "--since", "10m")
    assert saved.returncode == 0, saved.stderr
    assert "baseline 'before' saved" in saved.stdout
    # The same fleet, now at a third of the CPU for the same work.
    (tmp_path / "run" / store.FILENAME).rename(tmp_path / "kept")
    fleet(tmp_path, cpu=30, crash=False)
    conn = store.connect(tmp_path / "kept")
    (name, at, since, bot, figs) = conn.execute("SELECT * FROM baselines").fetchone()
    new = store.connect(store.path_in(tmp_path / "run"))
    new.execute("INSERT INTO baselines VALUES (?, ?, ?, ?, ?)", (name, at, since, bot, figs))
    r = cli(tmp_path, "--compare", "before", "--since", "10m", "--json")
    assert r.returncode == 0, r.stderr
    rows = {(c["bot"], c["figure"]): c for c in json.loads(r.stdout)["changes"]}
    cpu = rows[("web", "cpu_percent")]
    assert cpu["change"] == pytest.approx(-0.64, abs=0.03)
    assert cpu["beyond_noise"]
    per_unit = rows[("web", "cpu_ms_per_unit")]
    assert per_unit["beyond_noise"]
    assert per_unit["now"]["mean"] < per_unit["before"]["mean"]
    rss = rows[("web", "rss_mb")]  # the same in both: within the noise
    assert not rss["beyond_noise"]
    text = cli(tmp_path, "--compare", "before", "--since", "10m")
    assert "cpu_percent" in text.stdout
    assert " *" in text.stdout
