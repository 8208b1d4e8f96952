"""Log-file keys: defaults from [supervisor], overridden per bot; errors name their key path;
and the on-disk names and line formats that `supervisor logs` reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.cli import logread
from supervisor.config import loglayout
from supervisor.config import model as config
from supervisor.config.fields import BadValue
from supervisor.config.logs import FileFormat, LogSettings, byte_size
from supervisor.errors import ConfigError


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    return config.load(path)


def test_bots_inherit_supervisor_log_keys_and_override_them_one_by_one(tmp_path: Path) -> None:
    """[supervisor] sets the defaults; a bot's own key wins for that key only."""
    cfg = load(
        tmp_path,
        """
[supervisor]
log_max_bytes = "1MiB"
log_compress = true
log_file_format = "json"

[bots.a]
command = ["sleep", "1"]

[bots.b]
command = ["sleep", "1"]
log_compress = false
log_backups = 0
log_files = false
""",
    )
    assert cfg.bots["a"].logs == LogSettings(True, FileFormat.JSON, 1 << 20, 3, True)
    assert cfg.bots["b"].logs == LogSettings(False, FileFormat.JSON, 1 << 20, 0, False)


def test_a_bot_without_log_keys_gets_the_documented_defaults(tmp_path: Path) -> None:
    """Files on, text, 10 MiB, 3 backups, no gzip: what the README promises."""
    cfg = load(tmp_path, '[bots.a]\ncommand = ["sleep", "1"]\n')
    assert cfg.bots["a"].logs == LogSettings(True, FileFormat.TEXT, 10 << 20, 3, False)


def test_bad_log_keys_are_reported_by_key_path(tmp_path: Path) -> None:
    """Every bad log key is one line naming its path, [supervisor] and bots alike."""
    with pytest.raises(ConfigError) as e:
        load(
            tmp_path,
            """
[supervisor]
log_file_format = "xml"
log_max_bytes = "lots"

[bots.a]
command = ["sleep", "1"]
log_backups = -1
log_compress = "yes"
log_maxbytes = 5

[bots.b]
command = ["sleep", "1"]
log_max_bytes = "100B"
""",
        )
    assert e.value.problems == [
        'supervisor.log_file_format: expected one of "text", "json", got "xml"',
        'supervisor.log_max_bytes: expected a size (bytes >= 0, or a string such as "512KiB", '
        '"10MiB", "1GB"), got "lots"',
        "bots.a.log_backups: expected an integer >= 0, got -1",
        'bots.a.log_compress: expected true or false, got "yes"',
        'bots.a.log_maxbytes: unknown key; did you mean "log_max_bytes"?',
        'bots.b.log_max_bytes: expected 0 (never rotate) or at least 1KiB, got "100B"',
    ]


@pytest.mark.parametrize(
    ("given", "size"),
    [(0, 0), (4096, 4096), ("4096", 4096), ("512KiB", 512 << 10), ("10MiB", 10 << 20),
     ("10mb", 10_000_000), ("1GB", 10**9), ("1.5k", 1500), ("2 MiB", 2 << 20)],
)  # fmt: skip
def test_sizes(given: object, size: int) -> None:
    """Sizes are bytes, or a number with k/M/G (1000s) or Ki/Mi/Gi (1024s), B optional."""
    assert byte_size(given) == size


@pytest.mark.parametrize("given", [-1, True, "", "10 parsecs", "MiB", 1.5])
def test_bad_sizes(given: object) -> None:
    """Negative, boolean, fractional-byte and unit-less strings are refused."""
    with pytest.raises(BadValue, match="expected a size"):
        byte_size(given)


def test_segments_are_listed_in_order_per_slot_once_each() -> None:
    """A segment seen both plain and gzipped (mid-compression) is listed once, plain; the
    live link, temp files and strangers are ignored."""
    names = ["0.00000002.log", "0.00000001.log.gz", "0.00000002.log.gz", "1.00000010.log",
             "0.log", ".0.00000001.log.gz.tmp", "notes.txt", "0.00000003.log"]  # fmt: skip
    found = loglayout.list_segments(names)
    assert [(s.slot, s.seq, s.name) for s in found[0]] == [
        (0, 1, "0.00000001.log.gz"),
        (0, 2, "0.00000002.log"),
        (0, 3, "0.00000003.log"),
    ]
    assert [s.name for s in found[1]] == ["1.00000010.log"]
    assert loglayout.segment_name(1, 10) == "1.00000010.log"


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (
            b"2026-01-02T03:04:05.000006Z stdout 42 hello  world ",
            ("2026-01-02T03:04:05.000006Z", "stdout", 42, "hello  world "),
        ),
        (
            b'{"ts": "T", "bot": "b", "worker": 0, "pid": 7, "stream": "stderr", "line": "x y"}',
            ("T", "stderr", 7, "x y"),
        ),
        (
            b"2026-01-02T03:04:05.000006Z stdout 42 ",
            ("2026-01-02T03:04:05.000006Z", "stdout", 42, ""),
        ),
        (b"garbage", ("", "", 0, "garbage")),
        (b'{"not": "ours"}', ("", "", 0, '{"not": "ours"}')),
    ],
)
def test_lines_of_either_format_parse(raw: bytes, line: tuple[str, str, int, str]) -> None:
    """Text and JSON lines read back to the same fields; strangers are kept whole."""
    got = logread.parse(raw, 3)
    assert (got.ts, got.stream, got.pid, got.text) == line
    assert got.slot == 3
