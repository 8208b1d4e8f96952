"""What a reload does, as a table: the plan of two configs; start order from depends_on."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import model as config
from supervisor.config.process import read_env_file
from supervisor.errors import ConfigError
from supervisor.policy.reload import plan


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    return config.load(path)


BASE = """
[bots.a]
command = ["sleep", "1"]
[bots.b]
command = ["sleep", "1"]
workers = 2
"""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("", {"unchanged": ["a", "b"]}),
        ("workers = 2", {"unchanged": ["a", "b"]}),  # b as it was
        ("workers = 5", {"updated": ["b"], "unchanged": ["a"]}),
        ('stop_timeout_s = "3s"', {"updated": ["b"], "unchanged": ["a"]}),
        ("max_memory_mb = 100", {"updated": ["b"], "unchanged": ["a"]}),
        ('log_max_bytes = "1MiB"', {"updated": ["b"], "unchanged": ["a"]}),
        ("log_files = false", {"updated": ["b"], "unchanged": ["a"]}),
        ('restart = "never"', {"updated": ["b"], "unchanged": ["a"]}),
        ("max_starting = 4", {"updated": ["b"], "unchanged": ["a"]}),  # pacing: no restart
        ('env = { X = "1" }', {"restarted": ["b"], "unchanged": ["a"]}),
        ('stop_signal = "SIGINT"', {"restarted": ["b"], "unchanged": ["a"]}),
        ('umask = "077"', {"restarted": ["b"], "unchanged": ["a"]}),
        ("heartbeat_timeout_s = 5", {"restarted": ["b"], "unchanged": ["a"]}),
    ],
)
def test_a_change_to_one_bot(tmp_path: Path, change: str, expected: dict[str, list[str]]) -> None:
    old = load(tmp_path, BASE)
    new = load(
        tmp_path,
        BASE.replace("workers = 2", "workers = 2\n" + change).replace(
            "workers = 2\nworkers", "workers"
        ),
    )
    result = {k: v for k, v in plan(old, new).as_dict().items() if v}
    assert result == expected


def test_added_and_removed_bots_and_plugins(tmp_path: Path) -> None:
    old = load(
        tmp_path, BASE + '[bots.c]\ncommand = ["sleep", "1"]\n[plugins.monitor]\nlisten = ""\n'
    )
    new = load(tmp_path, BASE.replace("[bots.a]", "[bots.z]") + "[plugins.cache_warmer]\n")
    p = plan(old, new)
    assert p.added == ("z",)
    assert p.removed == ("c", "a")  # in reverse start order
    assert p.plugins_started == ("cache_warmer",)
    assert p.plugins_stopped == ("monitor",)


def test_a_plugin_with_new_settings_is_restarted(tmp_path: Path) -> None:
    old = load(tmp_path, BASE + '[plugins.monitor]\nlisten = ""\n')
    new = load(tmp_path, BASE + '[plugins.monitor]\nlisten = ""\ninterval_s = 2\n')
    assert plan(old, new).plugins_restarted == ("monitor",)


def test_supervisor_keys_that_need_a_restart(tmp_path: Path) -> None:
    old = load(tmp_path, BASE)
    new = load(tmp_path, '[supervisor]\nlog_level = "debug"\n' + BASE)
    assert plan(old, new).needs_restart == ("supervisor.log_level",)


def test_bots_are_ordered_after_their_dependencies(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
[bots.web]
command = ["sleep", "1"]
depends_on = ["api", "cache"]
[bots.api]
command = ["sleep", "1"]
depends_on = ["db"]
[bots.cache]
command = ["sleep", "1"]
[bots.db]
command = ["sleep", "1"]
""",
    )
    assert list(cfg.bots) == ["db", "api", "cache", "web"]


def test_a_self_dependency_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, '[bots.a]\ncommand = ["sleep", "1"]\ndepends_on = ["a"]\n')
    assert e.value.problems == ["bots.a.depends_on: a bot cannot depend on itself"]


def test_env_files(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text(
        'A=1\n export B = two words \nC=\'single # kept\'\nD="esc\\"aped\\nline"\n'
        "E=x # comment\n# F=no\n\n"
    )
    assert read_env_file(path) == {
        "A": "1",
        "B": "two words",
        "C": "single # kept",
        "D": 'esc"aped\nline',
        "E": "x",
    }
    path.write_text("A=1\nnot a line\n")
    with pytest.raises(ValueError, match=r"x.env:2: expected KEY=VALUE"):
        read_env_file(path)
