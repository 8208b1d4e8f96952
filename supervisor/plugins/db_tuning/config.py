"""`[plugins.db_tuning]`: presets by environment, per-bot overrides, the budget's knobs.

    [supervisor]
    environment = "prod"                 # or here, in [plugins.db_tuning]; default "dev"

    [plugins.db_tuning]
    dsn = "host=127.0.0.1 user=postgres dbname=app"   # the plugin's and the workers' server
    reserve = 10                         # connections kept free for people and migrations
    max_fleet_connections = 20           # a cap on the fleet's budget (default: none)
    interval_s = "1s"                    # read pg_stat_activity and rebalance this often
    tuning = true                        # move budget to bots that wait; false: split by weight
    max_size = 8                         # any preset key, for every bot

    [plugins.db_tuning.bots.reports]     # any preset key, for one bot, and its weight
    weight = 2
    statement_timeout_s = "2m"

A worker's pool gets min_size..max_size connections, but never more than
its share of the budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from supervisor.config.fields import BadValue, Table, choice, duration, integer, positive, string
from supervisor.config.model import ENVIRONMENTS

DEFAULT_DSN = "host=127.0.0.1 user=postgres dbname=postgres"


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """One worker's pool (psycopg_pool), before the budget caps max_size."""

    min_size: int
    max_size: int
    connect_timeout_s: float
    max_idle_s: float
    max_lifetime_s: float
    statement_timeout_s: float  # 0: none
    application_name: str = "supervisor"  # workers connect as "NAME:BOT:SLOT"

    def wire(self) -> dict[str, Any]:
        """What a worker's config message carries (besides the size the budget allows)."""
        return {
            "min_size": self.min_size,
            "max_size": self.max_size,
            "connect_timeout_s": self.connect_timeout_s,
            "max_idle_s": self.max_idle_s,
            "max_lifetime_s": self.max_lifetime_s,
            "statement_timeout_ms": round(self.statement_timeout_s * 1000),
            "application_name": self.application_name,
        }


PRESETS: Mapping[str, PoolSettings] = MappingProxyType(
    {
        # Few connections, errors early, nothing kept long.
        "dev": PoolSettings(0, 2, 5.0, 60.0, 1800.0, 30.0),
        "staging": PoolSettings(1, 5, 10.0, 300.0, 3600.0, 30.0),
        "prod": PoolSettings(2, 10, 10.0, 600.0, 3600.0, 15.0),
        # Warm pools, short statements: throughput over frugality.
        "high-performance": PoolSettings(4, 20, 5.0, 1800.0, 7200.0, 5.0),
    }
)


@dataclass(frozen=True, slots=True)
class BotPool:
    settings: PoolSettings
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class DbConfig:
    environment: str = "dev"
    dsn: str = DEFAULT_DSN
    reserve: int = 10
    max_fleet_connections: int | None = None
    interval_s: float = 1.0
    tuning: bool = True
    pool: PoolSettings = PRESETS["dev"]  # the preset with the plugin-wide overrides
    bots: Mapping[str, BotPool] = field(default_factory=lambda: MappingProxyType({}))

    def for_bot(self, bot: str) -> BotPool:
        return self.bots.get(bot) or BotPool(self.pool)


def configure(table: Table) -> DbConfig:
    """Read the table; every problem goes to table.problems with its key path."""
    environment = table.take("environment", choice(*ENVIRONMENTS), "dev")
    cap = table.take("max_fleet_connections", integer(minimum=0), -1)
    pool = _take_pool(table, PRESETS[environment])
    config = DbConfig(
        environment=environment,
        dsn=table.take("dsn", string, DEFAULT_DSN),
        reserve=table.take("reserve", integer(minimum=0), 10),
        max_fleet_connections=None if cap < 0 else cap,
        interval_s=table.take("interval_s", duration, 1.0),
        tuning=table.take("tuning", _boolean, True),
        pool=pool,
        bots=MappingProxyType(_take_bots(table.sub("bots"), pool)),
    )
    table.finish()
    if config.interval_s <= 0:
        table.problems.append(f"{table.key_path('interval_s')}: must be more than 0")
    return config


def _take_pool(table: Table, base: PoolSettings) -> PoolSettings:
    sizes = {
        "min_size": table.take("min_size", integer(minimum=0), base.min_size),
        "max_size": table.take("max_size", integer(minimum=1), base.max_size),
    }
    times = {
        name: table.take(name, duration, getattr(base, name))
        for name in ("connect_timeout_s", "max_idle_s", "max_lifetime_s", "statement_timeout_s")
    }
    name = table.take("application_name", _app_name, base.application_name)
    pool = replace(base, **sizes, **times, application_name=name)
    if pool.min_size > pool.max_size:
        table.problems.append(
            f"{table.key_path('min_size')}: {pool.min_size} is more than max_size ({pool.max_size})"
        )
    return pool


def _take_bots(table: Table, base: PoolSettings) -> dict[str, BotPool]:
    bots = {}
    for name in table.raw:
        table.used.add(name)
        sub = table.sub(name)
        if sub.has("application_name"):  # the plugin finds the fleet's connections by it
            sub.problems.append(
                f"{sub.key_path('application_name')}: is the same for the whole fleet; "
                "set it in [plugins.db_tuning]"
            )
        bots[name] = BotPool(_take_pool(sub, base), sub.take("weight", positive, 1.0))
        sub.finish([*(f.name for f in fields(PoolSettings)), "weight"])
    return bots


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        shown = f'"{value}"' if isinstance(value, str) else value
        raise BadValue(f"expected true or false, got {shown}")
    return value


def _app_name(value: Any) -> str:
    text = string(value)
    if len(text) > 40 or not text.isascii() or ":" in text:
        raise BadValue(f'expected at most 40 ASCII characters without ":", got "{text}"')
    return text


def describe(config: DbConfig) -> list[str]:
    """Effective values, for `supervisor check`."""
    cap = config.max_fleet_connections
    lines = [
        f"environment={config.environment} dsn={config.dsn!r} reserve={config.reserve} "
        f"max_fleet_connections={'none' if cap is None else cap} "
        f"tuning={'on' if config.tuning else 'off'} interval={config.interval_s:g}s",
        "  (all bots) " + _pool_line(config.pool),
    ]
    lines += [
        f"  {name:<10} weight={bot.weight:g} " + _pool_line(bot.settings)
        for name, bot in config.bots.items()
    ]
    return lines


def _pool_line(p: PoolSettings) -> str:
    return (
        f"pool={p.min_size}..{p.max_size} connect_timeout={p.connect_timeout_s:g}s "
        f"max_idle={p.max_idle_s:g}s max_lifetime={p.max_lifetime_s:g}s "
        f"statement_timeout={p.statement_timeout_s:g}s application_name={p.application_name}"
    )
