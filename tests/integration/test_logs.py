"""Worker output in files under run_dir/logs: rotation under a flood loses and repeats
nothing, retention and compression, and `supervisor logs` (-n, --worker, -f across rotations)."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from supervisor.cli import logread
from tests.integration.harness import Supervisor, wait_until

FLOOD_COUNT = 30_000


def bot(name: str, env: str, extra: str = "", workers: int = 1) -> str:
    return f"""
[bots.{name}]
module = "tests.bots.numbered:main"
ready_after_s = 0
workers = {workers}
env = {{ {env} }}
{extra}
"""


def segment_files(directory: Path, slot: int) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if re.fullmatch(rf"{slot}\.\d{{8}}\.log(\.gz)?", p.name)
    )


def file_lines(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.decode().splitlines()


def numbers(lines: list[str]) -> list[int]:
    """The bot's numbers, in file order, from text or JSON lines."""
    found = []
    for raw in lines:
        text = json.loads(raw)["line"] if raw.startswith("{") else raw.split(" ", 3)[3]
        if text.startswith("line "):
            found.append(int(text.split()[1]))
    return found


def finished(directory: Path, slots: int) -> bool:
    """Every slot has written its "done" (the live segment ends with it)."""
    for slot in range(slots):
        try:
            last = file_lines(directory / f"{slot}.log")[-1:]
        except FileNotFoundError:  # rotated between resolving the link and opening it
            return False
        if not last or logread.parse(last[0].encode(), slot).text != "done":
            return False
    return True


def test_a_flood_rotates_with_every_line_kept_exactly_once(sup: Supervisor) -> None:
    """Two workers flood 30 000 numbered lines each through 4 KiB files, gzip on: every number
    is in the current, rotated and compressed files exactly once, in order, and no file
    passes the size limit; a bot with 2 backups keeps only the newest 2 rotated files."""
    sup.configure(
        bot("flood", f'COUNT = "{FLOOD_COUNT}", STDERR_EVERY = "7"', workers=2,
            extra='log_max_bytes = "4KiB"\nlog_backups = 100000\nlog_compress = true')
        + bot("kept", f'COUNT = "{FLOOD_COUNT}"',
              extra='log_max_bytes = 4096\nlog_backups = 2\nlog_file_format = "json"')
    )  # fmt: skip
    sup.start()
    logs = sup.run_dir / "logs"
    wait_until(lambda: finished(logs / "flood", 2), timeout_s=60, what="flood to finish")
    wait_until(lambda: finished(logs / "kept", 1), timeout_s=60, what="kept to finish")

    for slot in (0, 1):
        # Compression runs behind the writer: wait for every rotated file to be gzipped.
        wait_until(
            lambda slot=slot: all(
                p.suffix == ".gz" for p in segment_files(logs / "flood", slot)[:-1]
            ),
            timeout_s=60,
            what="compression",
        )
        files = segment_files(logs / "flood", slot)
        assert len(files) > 100  # it did rotate, many times
        seen = [n for p in files for n in numbers(file_lines(p))]
        counts = Counter(seen)
        assert [n for n, c in counts.items() if c > 1] == []
        assert sorted(counts) == list(range(FLOOD_COUNT))
        # In order within each stream (two pipes, so not across them).
        for on_stderr in (True, False):
            stream = [n for n in seen if (n % 7 == 0) == on_stderr]
            assert stream == sorted(stream)
        assert max(len(gzip.decompress(p.read_bytes())) for p in files[:-1]) <= 4096

    wait_until(lambda: len(segment_files(logs / "kept", 0)) == 3, what="retention")
    kept = segment_files(logs / "kept", 0)
    tail = [n for p in kept for n in numbers(file_lines(p))]
    assert tail == list(range(tail[0], FLOOD_COUNT))  # the newest lines, none missing
    assert tail[0] > 0
    record = json.loads(file_lines(kept[-1])[0])
    assert set(record) == {"ts", "bot", "worker", "pid", "stream", "line"}
    assert record["bot"] == "kept"


def test_logs_prints_the_last_lines_merged_by_time(sup: Supervisor) -> None:
    """`logs BOT -n N` prints the last N lines of all workers in time order; --worker picks
    one; it reads the files, so it works after the supervisor is gone too."""
    sup.configure(bot("pair", 'COUNT = "500", EVERY_S = "0.001"', workers=2,
                      extra='log_max_bytes = "2KiB"\nlog_backups = 50'))  # fmt: skip
    sup.start()
    logs = sup.run_dir / "logs" / "pair"
    wait_until(lambda: finished(logs, 2), timeout_s=30, what="pair to finish")
    sup.request("shutdown")
    sup.wait_exit()

    out = sup.cli("logs", "pair", "-n", "300")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 300
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert stamps == sorted(stamps)
    assert {line.split(" ")[1] for line in lines} == {"pair:0", "pair:1"}
    assert lines[-1].endswith(" stdout done") or lines[-2].endswith(" stdout done")

    one = sup.cli("logs", "pair", "--worker", "1", "-n", "250")
    assert one.returncode == 0, one.stderr
    body = [line.split(" ", 3)[3] for line in one.stdout.splitlines()]
    assert {line.split(" ")[1] for line in one.stdout.splitlines()} == {"pair:1"}
    assert body == [f"line {i} {'x' * 20}" for i in range(251, 500)] + ["done"]

    unknown = sup.cli("logs", "nope")
    assert unknown.returncode == 1
    assert "no bot named 'nope' (bots: pair)" in unknown.stderr


def test_logs_follow_goes_on_across_rotations(sup: Supervisor) -> None:
    """The real `supervisor logs BOT -f` keeps printing through several rotations (with gzip
    of the rotated files): the numbers it prints run on with no gap and no repeat."""
    sup.configure(bot("ticker", 'EVERY_S = "0.002", PAD = "40"',
                      extra='log_max_bytes = "3KiB"\nlog_compress = true\nlog_backups = 1000'))  # fmt: skip
    sup.start()
    directory = sup.run_dir / "logs" / "ticker"
    wait_until((directory / "0.log").exists, what="a first log file")
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor",
            "logs",
            "ticker",
            "-f",
            "-n",
            "5",
            "-c",
            str(sup.config_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=sup.dir,
    )
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(iter(follower.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: printed, what="the follower's first lines")
        first_seq = live_seq(directory)
        wait_until(lambda: live_seq(directory) >= first_seq + 4, what="four rotations")
        last = numbers(file_lines(directory / "0.log"))[-1]
        wait_until(lambda: last in printed_numbers(printed), what=f"line {last} to be followed")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        reader.join(timeout=10)
    seen = printed_numbers(printed)
    assert len(seen) > 100
    assert seen == list(range(seen[0], seen[0] + len(seen)))
    rotated = segment_files(directory, 0)[:-1]
    assert any(p.suffix == ".gz" for p in rotated)


def live_seq(directory: Path) -> int:
    target = (directory / "0.log").readlink().name
    return int(target.split(".")[1])


def printed_numbers(printed: list[str]) -> list[int]:
    """Numbers from `logs` output lines: `TS BOT:SLOT STREAM line N xxx`."""
    found = []
    for line in list(printed):
        text = line.rstrip("\n").split(" ", 3)[3]
        if text.startswith("line "):
            found.append(int(text.split()[1]))
    return found


def test_a_log_that_cannot_be_written_is_counted_and_harms_nothing(sup: Supervisor) -> None:
    """A bot's log directory that cannot be created (a file is in the way): the failure is
    logged once and counted in status, the worker runs on, its output still reaches the
    supervisor's log, and the other bot's files are written."""
    sup.configure(bot("blocked", 'EVERY_S = "0.01"') + bot("fine", 'COUNT = "3"'))
    (sup.run_dir / "logs").mkdir(parents=True)
    (sup.run_dir / "logs" / "blocked").write_text("in the way\n")
    sup.start()
    wait_until(lambda: sup.status()["supervisor"]["log_write_failures"] >= 3, what="failures")
    wait_until(lambda: finished(sup.run_dir / "logs" / "fine", 1), what="fine's files")
    assert sup.bot("blocked")["running"] == 1
    assert sup.bot("blocked")["restarts"] == 0
    assert len(sup.events("log_write_failed")) == 1
    said = [e["line"] for e in sup.events("worker_output") if e["bot"] == "blocked"]
    assert "line 0 " + "x" * 20 in said


def test_a_reload_applies_new_log_settings_without_restarting_workers(sup: Supervisor) -> None:
    """`supervisor reload` with a smaller log_max_bytes: the bot's files start rotating at the
    new size while its workers keep their pids (log keys are live settings)."""
    ticker = bot("ticker", 'EVERY_S = "0.002"', workers=2)
    sup.configure(ticker)
    sup.start()
    before = sup.wait_running("ticker", 2)
    directory = sup.run_dir / "logs" / "ticker"
    wait_until((directory / "1.log").exists, what="the second worker's file")
    assert len(segment_files(directory, 0)) == 1

    sup.configure(ticker + 'log_max_bytes = "2KiB"\n')
    out = sup.cli("reload")
    assert out.returncode == 0, out.stderr
    for slot in (0, 1):
        wait_until(lambda slot=slot: len(segment_files(directory, slot)) >= 3, what="rotation")
    assert sup.pids("ticker") == before
    assert all(p.stat().st_size <= 2048 for p in segment_files(directory, 0)[1:-1])


def test_a_bot_removed_by_reload_has_its_log_files_closed(sup: Supervisor) -> None:
    """After a reload removes a bot, the supervisor holds none of its log files open (and its
    last lines are in them); the bot that stays keeps writing."""
    stays = bot("stays", 'EVERY_S = "0.01"')
    sup.configure(stays + bot("goes", 'EVERY_S = "0.01"', workers=2))
    sup.start()
    sup.wait_running("goes", 2)
    logs = sup.run_dir / "logs"

    def open_files(name: str) -> list[str]:
        found = []
        for fd in Path(f"/proc/{sup.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith(f"{logs / name}/"):
                    found.append(target)
        return found

    wait_until(lambda: len(open_files("goes")) == 2, what="goes' two files open")
    sup.configure(stays)
    out = sup.cli("reload")
    assert out.returncode == 0, out.stderr
    wait_until(lambda: not open_files("goes"), what="goes' files closed")
    assert len(open_files("stays")) == 1
    before = len(file_lines(logs / "stays" / "0.log"))
    wait_until(lambda: len(file_lines(logs / "stays" / "0.log")) > before, what="stays writing")


def test_output_events_can_be_left_to_the_files(sup: Supervisor) -> None:
    """log_output_events = false: the lines are in the bot's files and not in the
    supervisor's own log; another bot keeps its worker_output events."""
    sup.configure(
        bot("quiet", 'COUNT = "50"', extra="log_output_events = false")
        + bot("loud", 'COUNT = "50"')
    )
    sup.start()
    quiet = sup.run_dir / "logs" / "quiet"
    wait_until(lambda: finished(quiet, 1), what="quiet's lines in its file")
    wait_until(
        lambda: sum(1 for e in sup.events("worker_output") if e["bot"] == "loud") >= 50,
        what="loud's worker_output events",
    )
    assert numbers([ln for p in segment_files(quiet, 0) for ln in file_lines(p)]) == list(range(50))
    assert not [e for e in sup.events("worker_output") if e["bot"] == "quiet"]
