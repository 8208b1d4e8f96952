"""`[plugins.db_tuning]`: presets by environment, overrides, and errors that name their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import model as config
from supervisor.errors import ConfigError
from supervisor.plugins.db_tuning.config import PRESETS, DbConfig, describe

BOT = '[bots.a]\ncommand = ["sleep", "5"]\n'


def load(tmp_path: Path, text: str) -> DbConfig:
    path = tmp_path / "supervisor.toml"
    path.write_text(BOT + text)
    settings: DbConfig = config.load(path).plugins["db_tuning"].settings
    return settings


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "supervisor.toml"
    path.write_text(BOT + text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "environment"),
    [
        ("[plugins.db_tuning]\n", "dev"),
        ('[supervisor]\nenvironment = "prod"\n[plugins.db_tuning]\n', "prod"),
        (
            '[supervisor]\nenvironment = "prod"\n[plugins.db_tuning]\nenvironment = "staging"\n',
            "staging",
        ),
        ('[plugins.db_tuning]\nenvironment = "high-performance"\n', "high-performance"),
    ],
)
def test_environment_picks_the_preset(tmp_path: Path, text: str, environment: str) -> None:
    """The plugin's own `environment` wins over [supervisor]'s; "dev" without either."""
    cfg = load(tmp_path, text)
    assert cfg.environment == environment
    assert cfg.pool == PRESETS[environment]


def test_overrides_plugin_wide_and_per_bot(tmp_path: Path) -> None:
    """A key in the plugin's table applies to every bot; a bot's table overrides it again."""
    cfg = load(
        tmp_path,
        """
[plugins.db_tuning]
environment = "prod"
max_size = 6
statement_timeout_s = "2s"
max_fleet_connections = 20
reserve = 3
tuning = false
[plugins.db_tuning.bots.a]
weight = 2.5
max_size = 4
max_lifetime_s = "10m"
""",
    )
    assert (cfg.pool.max_size, cfg.pool.statement_timeout_s) == (6, 2.0)
    assert cfg.pool.min_size == PRESETS["prod"].min_size
    a = cfg.for_bot("a")
    assert (a.weight, a.settings.max_size, a.settings.max_lifetime_s) == (2.5, 4, 600.0)
    assert a.settings.statement_timeout_s == 2.0  # inherited from the plugin-wide override
    assert cfg.for_bot("other").settings == cfg.pool
    assert (cfg.max_fleet_connections, cfg.reserve, cfg.tuning) == (20, 3, False)
    shown = "\n".join(describe(cfg))
    assert "max_fleet_connections=20" in shown
    assert "a          weight=2.5 pool=2..4" in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[plugins.db_tuning]\nenvironment = "production"\n',
            'plugins.db_tuning.environment: expected one of "dev", "staging", "prod", '
            '"high-performance", got "production"',
        ),
        (
            '[supervisor]\nenvironment = "qa"\n[plugins.db_tuning]\n',
            'supervisor.environment: expected one of "dev", "staging", "prod", '
            '"high-performance", got "qa"',
        ),
        (
            "[plugins.db_tuning]\nmax_size = 0\n",
            "plugins.db_tuning.max_size: expected an integer >= 1, got 0",
        ),
        (
            "[plugins.db_tuning.bots.a]\nmin_size = 5\nmax_size = 3\n",
            "plugins.db_tuning.bots.a.min_size: 5 is more than max_size (3)",
        ),
        (
            "[plugins.db_tuning.bots.a]\nweigth = 2\n",
            'plugins.db_tuning.bots.a.weigth: unknown key; did you mean "weight"?',
        ),
        (
            '[plugins.db_tuning]\nreserve = "ten"\n',
            'plugins.db_tuning.reserve: expected an integer >= 0, got "ten"',
        ),
        (
            '[plugins.db_tuning]\napplication_name = "a:b"\n',
            'plugins.db_tuning.application_name: expected at most 40 ASCII characters without ":", got "a:b"',
        ),
        (
            '[plugins.db_tuning.bots.a]\napplication_name = "mine"\n',
            "plugins.db_tuning.bots.a.application_name: is the same for the whole fleet",
        ),
        (
            '[plugins.db_tuning]\ntuning = "yes"\n',
            'plugins.db_tuning.tuning: expected true or false, got "yes"',
        ),
        (
            '[plugins.db_tuning.bots.a]\nstatement_timeout_s = "soon"\n',
            "plugins.db_tuning.bots.a.statement_timeout_s: expected a duration",
        ),
    ],
)
def test_mistakes_name_their_key_path(tmp_path: Path, text: str, expected: str) -> None:
    """Each mistake is one line that starts with its key path."""
    found = problems(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found
