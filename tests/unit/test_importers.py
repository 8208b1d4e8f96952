"""`supervisor import`'s converters: each peer's option, as a fragment, gives our TOML fragment.

Pure conversion: files are written under tmp_path and read back; nothing is started.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.cli import importers
from supervisor.cli.importers import common, jsdata
from supervisor.cli.importers.supervisord import environment
from supervisor.config import model

SAMPLES = Path(__file__).resolve().parents[1] / "importers"
ENV = {"HOME": "/home/bot", "REGION": "eu"}


def convert(tmp_path: Path, name: str, text: str, fmt: str | None = None) -> tuple[str, list[str]]:
    path = tmp_path / name
    path.write_text(text)
    _, out, dropped = importers.convert(path, fmt, ENV)
    return out, [str(item) for item in dropped]


def bot(text: str, name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = tomllib.loads(text)["bots"][name]
    return parsed


# ---------------------------------------------------------------- supervisord

SUPERVISORD = [
    (
        "command = python3 -m app --name 'a b'",
        {"command": ["python3", "-m", "app", "--name", "a b"]},
    ),
    ("numprocs = 4", {"workers": 4}),
    ("directory = /srv/app", {"cwd": "/srv/app"}),
    ('environment = A="1,2",B=x', {"env": {"A": "1,2", "B": "x"}}),
    (
        "environment = HOME=%(ENV_HOME)s,WHO=%(program_name)s",
        {"env": {"HOME": "/home/bot", "WHO": "x"}},
    ),
    ("autorestart = true", {"restart": "always"}),
    ("autorestart = false", {"restart": "never"}),
    ("autorestart = unexpected", {"restart": "on-failure"}),
    ("", {"restart": "on-failure"}),  # supervisord's default
    ("startsecs = 5", {"ready_after_s": 5}),
    ("startretries = 7", {"max_restarts": 7}),
    ("startretries = 0", {"max_restarts": 1}),
    ("stopsignal = QUIT", {"stop_signal": "SIGQUIT"}),
    ("stopwaitsecs = 30", {"stop_timeout_s": 30}),
    ("user = root", {"user": "root"}),
    ("umask = 022", {"umask": "022"}),
    ("stdout_logfile_maxbytes = 50MB", {"log_max_bytes": 50 * 1024 * 1024}),
    ("stdout_logfile_maxbytes = 0", {"log_max_bytes": 0}),
    ("stdout_logfile_backups = 4", {"log_backups": 4}),
]


@pytest.mark.parametrize(("fragment", "expected"), SUPERVISORD)
def test_supervisord_option(tmp_path: Path, fragment: str, expected: dict[str, Any]) -> None:
    """Each [program:x] option becomes its key of [bots.x]."""
    command = "" if fragment.startswith("command") else "command = sleep 1\n"
    out, _ = convert(tmp_path, "s.conf", f"[program:x]\n{command}{fragment}\n")
    assert bot(out, "x").items() >= expected.items()


@pytest.mark.parametrize(
    ("fragment", "listed"),
    [
        ("stdout_logfile = /var/log/x.log", "stdout_logfile = /var/log/x.log"),
        ("exitcodes = 0,2", "exitcodes = 0,2"),
        ("autostart = false", "autostart = false"),
        ("command = sleep %(process_num)s", "command = sleep %(process_num)s"),
        ("serverurl = AUTO", "serverurl = AUTO"),
    ],
)
def test_supervisord_unconverted(tmp_path: Path, fragment: str, listed: str) -> None:
    """An option without an equivalent is listed and written as a comment, never dropped."""
    out, dropped = convert(tmp_path, "s.conf", f"[program:x]\ncommand = sleep 1\n{fragment}\n")
    assert [d for d in dropped if f"[program:x] {listed}:" in d]
    assert f"# not converted: {listed} (" in out


def test_supervisord_priority_orders_the_bots(tmp_path: Path) -> None:
    """Lower priority is written first (ours starts in file order, stops in reverse)."""
    text = "[program:b]\ncommand=sleep 1\npriority=20\n[program:a]\ncommand=sleep 1\npriority=10\n"
    out, _ = convert(tmp_path, "s.conf", text)
    assert list(tomllib.loads(out)["bots"]) == ["a", "b"]


def test_supervisord_group_include_and_here(tmp_path: Path) -> None:
    """[include] globs relative to the file; %(here)s is the including file's directory;
    a [group:x] is listed (no groups here) and noted at each of its bots."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "m.conf").write_text(
        "[program:m]\ncommand=sleep 1\ndirectory=%(here)s\n"
    )
    main = "[program:a]\ncommand=sleep 1\n[group:g]\nprograms=a,m\n[include]\nfiles=conf.d/*.conf\n"
    out, dropped = convert(tmp_path, "s.conf", main)
    assert bot(out, "m")["cwd"] == str(tmp_path / "conf.d")
    assert "# note: in [group:g] (ours has no groups)" in out
    assert (
        "s.conf [group:g] programs = a,m: no bot groups here; its programs are imported as separate bots"
        in dropped
    )
    assert "# From m.conf:1 [program:m]" in out


def test_supervisord_environment_syntax() -> None:
    """KEY="val",KEY2=val: quotes optional, commas inside quotes kept."""
    assert environment("A=\"x, y\",B=2,C='q'") == {"A": "x, y", "B": "2", "C": "q"}


def test_supervisord_zero_padded_process_num(tmp_path: Path) -> None:
    """%(process_num)02d expands like Python's %-format."""
    out, _ = convert(tmp_path, "s.conf", "[program:x]\ncommand=echo %(process_num)02d\n")
    assert bot(out, "x")["command"] == ["echo", "00"]


# ---------------------------------------------------------------- circus

CIRCUS = [
    ("cmd = python3\nargs = -m app --port 1", {"command": ["python3", "-m", "app", "--port", "1"]}),
    ("cmd = sleep 1\nnumprocesses = 3", {"workers": 3}),
    ("cmd = sleep 1\nworking_dir = /srv", {"cwd": "/srv"}),
    ("cmd = sleep 1\nstop_signal = QUIT", {"stop_signal": "SIGQUIT"}),
    ("cmd = sleep 1\ngraceful_timeout = 5", {"stop_timeout_s": 5.0}),
    ("cmd = sleep 1", {"stop_timeout_s": 30}),  # circus's default
    ("cmd = sleep 1\nmax_retry = 4", {"max_restarts": 4}),
    ("cmd = sleep 1\nrespawn = false", {"restart": "never"}),
    ("cmd = sleep 1\nrlimit_nofile = 2048", {"rlimits": {"nofile": 2048}}),
    ("cmd = sleep 1\nuid = root", {"user": "root"}),
    ("cmd = echo $(circus.env.REGION)", {"command": ["echo", "eu"]}),
    ("cmd = sleep 1\nflapping.attempts = 9", {"max_restarts": 9}),
]


@pytest.mark.parametrize(("fragment", "expected"), CIRCUS)
def test_circus_option(tmp_path: Path, fragment: str, expected: dict[str, Any]) -> None:
    """Each [watcher:x] option becomes its key of [bots.x]."""
    out, _ = convert(tmp_path, "c.ini", f"[watcher:x]\n{fragment}\n")
    assert bot(out, "x").items() >= expected.items()


def test_circus_env_section_and_flapping(tmp_path: Path) -> None:
    """[env:x] is the bot's env; [plugin:flapping] is every bot's crash-loop limit."""
    text = (
        "[watcher:x]\ncmd=sleep 1\n[env:x]\nMixedCase = 1\n"
        "[plugin:flapping]\nuse=circus.plugins.flapping.Flapping\nattempts=3\nwindow=10\nretry_in=7\n"
    )
    out, dropped = convert(tmp_path, "c.ini", text)
    assert (
        bot(out, "x").items()
        >= {"env": {"MixedCase": "1"}, "max_restarts": 3, "restart_window_s": 10}.items()
    )
    assert dropped == [
        "c.ini [plugin:flapping] retry_in = 7: a failed bot stays down until `supervisor start BOT`"
    ]


def test_circus_env_without_its_watcher_is_listed(tmp_path: Path) -> None:
    """An [env:x] that belongs to no watcher is listed, not lost."""
    _, dropped = convert(tmp_path, "c.ini", "[watcher:x]\ncmd=sleep 1\n[env:y]\nA=1\n")
    assert dropped == ["c.ini [env:y]: no [watcher:x] of that name (one watcher per [env:x] here)"]


def test_circus_priority_starts_highest_first(tmp_path: Path) -> None:
    """Circus starts the highest priority first, so it is written first."""
    text = "[watcher:lo]\ncmd=sleep 1\npriority=1\n[watcher:hi]\ncmd=sleep 1\npriority=5\n"
    out, _ = convert(tmp_path, "c.ini", text)
    assert list(tomllib.loads(out)["bots"]) == ["hi", "lo"]


# ---------------------------------------------------------------- pm2

PM2: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"script": "app.js"}, {"command": ["node", "app.js"]}),
    ({"script": "app.py", "args": "--a 1"}, {"command": ["python3", "app.py", "--a", "1"]}),
    ({"script": "bin/app", "args": ["x"], "interpreter": "none"}, {"command": ["bin/app", "x"]}),
    ({"script": "a.js", "interpreter": "bun"}, {"command": ["bun", "a.js"]}),
    ({"script": "a.js", "node_args": "--inspect"}, {"command": ["node", "--inspect", "a.js"]}),
    ({"script": "a", "instances": 4}, {"workers": 4}),
    ({"script": "a", "cwd": "/srv"}, {"cwd": "/srv"}),
    ({"script": "a", "env": {"PORT": 80, "ON": True}}, {"env": {"PORT": "80", "ON": "true"}}),
    ({"script": "a", "autorestart": False}, {"restart": "never"}),
    ({"script": "a", "max_restarts": 3}, {"max_restarts": 3}),
    ({"script": "a", "max_restarts": 0}, {"max_restarts": 1}),  # ours needs at least one
    ({"script": "a", "min_uptime": 2500}, {"ready_after_s": "2500ms"}),
    (
        {"script": "a", "restart_delay": 2000},
        {"backoff_initial_s": 2, "backoff_factor": 1.0, "backoff_max_s": 2},
    ),
    (
        {"script": "a", "exp_backoff_restart_delay": 100},
        {"backoff_initial_s": "100ms", "backoff_factor": 1.5},
    ),
    ({"script": "a", "max_memory_restart": "150M"}, {"max_memory_mb": 150}),
    ({"script": "a", "max_memory_restart": "1G"}, {"max_memory_mb": 1024}),
    ({"script": "a", "kill_timeout": 3000}, {"stop_timeout_s": 3}),
    ({"script": "a"}, {"stop_timeout_s": "1600ms"}),  # PM2's default kill_timeout
]


@pytest.mark.parametrize(("app", "expected"), PM2)
def test_pm2_option(tmp_path: Path, app: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each apps[] attribute becomes its key of the bot."""
    import json

    out, _ = convert(tmp_path, "ecosystem.json", json.dumps({"apps": [{"name": "x", **app}]}))
    assert bot(out, "x").items() >= expected.items()


@pytest.mark.parametrize(
    "key", ["cron_restart", "watch", "out_file", "env_production", "node_args"]
)
def test_pm2_unconverted(tmp_path: Path, key: str) -> None:
    """PM2 attributes without an equivalent are listed, with the app they belong to."""
    text = f'{{"apps": [{{"name": "x", "script": "a", "{key}": "v"}}]}}'
    _, dropped = convert(tmp_path, "ecosystem.json", text)
    assert [d for d in dropped if d.startswith(f'ecosystem.json [apps[0] x] {key} = "v":')]


def test_pm2_config_js_plain_data() -> None:
    """module.exports = {...} with unquoted keys, single quotes and trailing commas is data."""
    js = "// c\nmodule.exports = {\n  apps: [{ name: 'a', script: `s`, args: ['x',], },],\n};\n"
    import json

    data = json.loads(jsdata.to_json(js, "e.config.js"))
    assert data == {"apps": [{"name": "a", "script": "s", "args": ["x"]}]}


@pytest.mark.parametrize(
    ("js", "line", "found"),
    [
        ("module.exports = {\n  apps: [{ cwd: __dirname }] }", 2, "'__dirname'"),
        ("const x = require('y');\nmodule.exports = x", 1, "expected `module.exports"),
        ("module.exports = {\n\n apps: [{ env: process.env }] }", 3, "'process'"),
    ],
)
def test_pm2_config_js_code_is_refused(js: str, line: int, found: str) -> None:
    """A .config.js with code is refused with its line: code is never executed."""
    with pytest.raises(common.SourceError, match=rf"^e\.config\.js:{line}: .*{found}"):
        jsdata.to_json(js, "e.config.js")


# ---------------------------------------------------------------- procfile


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("web: python3 -m http.server", ["python3", "-m", "http.server"]),
        (
            "web: gunicorn app --bind 0.0.0.0:$PORT",
            ["sh", "-c", "gunicorn app --bind 0.0.0.0:$PORT"],
        ),
        ("web: a && b", ["sh", "-c", "a && b"]),
    ],
)
def test_procfile_line(tmp_path: Path, line: str, expected: list[str]) -> None:
    """A plain command is argv; one with shell syntax runs under sh -c, as foreman's does."""
    out, dropped = convert(tmp_path, "Procfile", f"# c\n\n{line}\n")
    assert bot(out, "web")["command"] == expected
    assert dropped == []
    assert "# From Procfile:3" in out


# ---------------------------------------------------------------- shared


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("a.conf", "[program:x]\ncommand=a\n", "supervisord"),
        ("a.ini", "[watcher:x]\ncmd=a\n", "circus"),
        ("a.json", '{"apps": []}', "pm2"),
        ("ecosystem.config.js", "module.exports = {apps: []}", "pm2"),
        ("Procfile", "", "procfile"),
        ("procs.txt", "web: a\nworker: b\n", "procfile"),
    ],
)
def test_format_is_detected(tmp_path: Path, name: str, text: str, fmt: str) -> None:
    """Without --from, the file's name and sections tell the format."""
    (tmp_path / name).write_text(text)
    assert importers.detect(tmp_path / name) == fmt


@pytest.mark.parametrize(
    ("name", "text", "fmt", "message"),
    [
        ("a.txt", "hello there\n", None, r"a\.txt: unknown format: expected \[program:x\]"),
        (
            "a.conf",
            "[program:x]\ncommand=a\nthis is not ini\n",
            None,
            r"a\.conf:3: expected key = value",
        ),
        ("a.conf", "command=a\n", "supervisord", r"a\.conf:1: expected a \[section\] header"),
        ("a.json", '{"apps": [\n{"script": }]}', None, r"a\.json:2: expected JSON"),
        ("a.json", '{"apps": [{}]}', None, r'apps\[0\]: expected "script"'),
        (
            "a.json",
            '{"apps": [{"script": "a", "kill_timeout": "x"}]}',
            None,
            r"a\.json: apps\[0\] a: kill_timeout: expected milliseconds",
        ),
        ("Procfile", "web: a\nnot a line\n", None, r"Procfile:2: expected NAME: COMMAND"),
        (
            "a.conf",
            "[program:x]\ncommand=%(nope)s\n",
            None,
            r"a\.conf:2: \[program:x\] command: unknown expansion %\(nope\)s",
        ),
        (
            "a.conf",
            "[program:x]\ncommand=a\nnumprocs=two\n",
            None,
            r"a\.conf:3: \[program:x\] numprocs: expected a whole number",
        ),
        ("a.conf", "[program:x]\ncommand=a\n", "upstart", r"unknown format 'upstart'"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, name: str, text: str, fmt: str | None, message: str
) -> None:
    """A malformed source gets one line: file, line and what was expected."""
    with pytest.raises(common.SourceError, match=message) as caught:
        convert(tmp_path, name, text, fmt)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "name"),
    [("web app", "web-app"), ("-x", "x"), ("a/b", "a-b"), ("✓", "bot"), ("a" * 80, "a" * 64)],
)
def test_names_are_sanitized(raw: str, name: str) -> None:
    """Names are made to fit our pattern, and the change is noted."""
    bots = [common.Bot(raw, "here")]
    common.sanitize_names(bots)
    assert bots[0].name == name
    assert bots[0].notes == [f"renamed from {raw!r} (names use letters, digits, _ . -)"]


def test_clashing_names_get_a_suffix() -> None:
    """Two sources that sanitize to one name stay two bots."""
    bots = [common.Bot("a b", "1"), common.Bot("a-b", "2")]
    common.sanitize_names(bots)
    assert [b.name for b in bots] == ["a-b", "a-b-2"]


@pytest.mark.parametrize("text", ['a"b', "a\\b", "line\nbreak", "tab\there", "\x00\x1f\x7f", "é ✓"])
def test_writer_strings_round_trip(text: str) -> None:
    """Our TOML writer's strings read back as written."""
    assert tomllib.loads(f"k = {common.value(text)}")["k"] == text


# A fixed alphabet (as tests/unit/test_protocol.py): quotes, backslashes, control characters,
# newlines, a dot, non-ASCII and astral text are what a writer gets wrong.
_TEXT = st.text(alphabet='ab.9_ -"\\\n\t\x00\x7f#=[]\u00e9\U0001d11e', max_size=12)


@given(
    name=_TEXT,
    argv=st.lists(_TEXT, min_size=1, max_size=4),
    env=st.dictionaries(_TEXT.filter(bool), _TEXT, max_size=3),
    note=_TEXT,
)
def test_rendered_text_reads_back(
    name: str, argv: list[str], env: dict[str, str], note: str
) -> None:
    """Whatever the names, values and notes hold, tomllib reads back exactly what was written."""
    bot = common.Bot(name, f"origin {note}", keys={"command": argv, "env": env, "workers": 2})
    bot.notes.append(note)
    common.sanitize_names([bot])
    parsed = tomllib.loads(common.render(note, "test", [bot], []))
    assert parsed == {"bots": {bot.name: {"command": argv, "env": env, "workers": 2}}}


@pytest.mark.parametrize("name", ["9\n", "a.b", "a b", ""])
def test_keys_that_are_not_bare_are_quoted(name: str) -> None:
    """A key with a trailing newline, a dot or a space is written quoted (found by the property above)."""
    assert tomllib.loads(f"{common.key(name)} = 1") == {name: 1}


def test_comments_cannot_break_out() -> None:
    """A newline in a value shown in a comment stays inside the comment."""
    line = common.comment("not converted: x = a\n[bots.evil]")
    assert "\n" not in line
    assert tomllib.loads(line) == {}


@pytest.mark.parametrize(
    "sample",
    [
        "supervisord/supervisord.conf",
        "circus/circus.ini",
        "pm2/ecosystem.json",
        "pm2/ecosystem.config.js",
        "procfile/Procfile",
    ],
)
def test_samples_load(tmp_path: Path, sample: str) -> None:
    """Every sample under tests/importers/ converts to a config our loader accepts."""
    _, text, dropped = importers.convert(SAMPLES / sample, None, ENV)
    (tmp_path / "supervisor.toml").write_text(text)
    config = model.load(tmp_path / "supervisor.toml")
    assert config.bots
    for item in dropped:
        assert f"not converted: {item.key}" in text or f"not converted: {item}" in text


def test_cli_offers_every_format() -> None:
    """`--from` offers exactly the importers there are (main.py keeps its own copy, unimported)."""
    from supervisor.cli import main

    assert main.IMPORT_FORMATS == importers.FORMATS
