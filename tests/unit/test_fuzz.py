"""Every decoder of untrusted input, fed arbitrary bytes and arbitrary well-formed values:
only its documented error type may come out (whatever library does the decoding).

    control requests and replies, worker batches, commands to workers  -> ProtocolError
    plugin message kinds (cache warmer, db tuning)                     -> ProtocolError
    the dashboard's HTTP request head                                  -> ValueError (a 400)
    the config loader, on arbitrary text and arbitrary TOML             -> ConfigError

Run under the suite's hypothesis profile (tests/conftest.py); these are plain unit tests, so
CI runs them with the rest.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import anyio
import msgpack
from hypothesis import given
from hypothesis import strategies as st

from supervisor.config import model as config
from supervisor.errors import ConfigError, ProtocolError
from supervisor.plugins.cache_warmer.plugin import CacheWarmer
from supervisor.plugins.monitor import web
from supervisor.wire import db as wire_db
from supervisor.wire import protocol

# Text from a fixed alphabet (see test_protocol.py: the full unicode strategy is slow to
# start), with the characters that break parsers: NUL, quotes, backslash, newline, non-ASCII.
_text = st.text(alphabet="ab_.:-09 \x00\"'\\\n\t\u00e9\u2603\U0001d11e", max_size=24)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | _text
    | st.binary(max_size=24)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=6,
)
_token = st.just(b"t" * protocol.TOKEN_BYTES) | st.binary(max_size=20)


def _packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the wire


def _decode_all(frame: bytes) -> None:
    """Every decoder of the wire protocol, on one frame: only ProtocolError may come out."""
    for decode in (
        protocol.decode_request,
        protocol.decode_reply,
        protocol.decode_batch,
        protocol.decode_commands,
    ):
        with contextlib.suppress(ProtocolError):
            decode(frame)


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_protocol_error(frame: bytes) -> None:
    _decode_all(frame)


@given(_values)
def test_arbitrary_msgpack_raises_only_protocol_error(value: Any) -> None:
    frame = _packed(value)
    _decode_all(frame)


_kinds = st.sampled_from(
    [*range(1, 8), *range(32, 38), 64, 65, 66, 67, 68, 0, -1, 2**64 - 1]
) | st.integers(-10, 300)


def _with_kind(rest: list[Any]) -> st.SearchStrategy[list[Any]]:
    return _kinds.map(lambda kind: [kind, *rest])


@given(
    st.sampled_from([1, protocol.VERSION, 2]),
    _token,
    st.lists(st.lists(_values, max_size=8).flatmap(_with_kind), max_size=4),
)
def test_batches_of_arbitrary_messages_raise_only_protocol_error(
    version: int, token: bytes, messages: list[list[Any]]
) -> None:
    """Shaped like a batch, with every kind (ours, plugins', unknown) and any fields."""
    with contextlib.suppress(ProtocolError):
        protocol.decode_batch(_packed([version, token, messages]))
    with contextlib.suppress(ProtocolError):
        protocol.decode_commands(_packed([version, messages]))


PLUGIN_CHECKS = {**CacheWarmer.message_kinds, **wire_db.CHECKS}


@given(st.sampled_from(sorted(PLUGIN_CHECKS)), st.lists(_values, max_size=9))
def test_plugin_kinds_raise_only_protocol_error(kind: int, fields: list[Any]) -> None:
    with contextlib.suppress(ProtocolError):
        PLUGIN_CHECKS[kind]([kind, *fields])


# ---------------------------------------------------------------- the dashboard's HTTP


class _Chunks:
    """A receive stream that hands out the given chunks, then ends."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.chunks:
            raise anyio.EndOfStream
        return self.chunks.pop(0)[:max_bytes]


_head_bytes = st.lists(
    st.binary(max_size=64)
    | st.sampled_from([b"GET / HTTP/1.1", b"\r\n", b"\r\n\r\n", b" ", b"HTTP/", b"\xff"]),
    max_size=12,
)


@given(_head_bytes)
def test_http_heads_raise_only_what_the_server_answers_400_to(parts: list[bytes]) -> None:
    """web.App.handle answers 400 to ValueError, EndOfStream and timeouts, and the request
    line parser raises only ValueError; anything else would be a 503 and a logged bug."""

    async def read() -> None:
        head, _rest = await web._read_head(_Chunks(parts))  # type: ignore[arg-type]
        web._request_line(head)

    with contextlib.suppress(ValueError, anyio.EndOfStream):
        anyio.run(read)
    with contextlib.suppress(ValueError):
        web._request_line(b"".join(parts))


# ---------------------------------------------------------------- the config loader

_BOT_KEYS = [
    "command", "module", "workers", "env", "env_file", "cwd", "restart", "stop_signal",
    "stop_timeout_s", "backoff_initial_s", "backoff_factor", "backoff_max_s", "backoff_jitter",
    "max_restarts", "restart_window_s", "readiness", "ready_after_s", "ready_timeout_s",
    "heartbeat_timeout_s", "scale", "depends_on", "user", "group", "umask", "rlimits",
    "max_memory_mb", "fail_bot_at", "needs", "on_dependency_restart", "port", "probes",
    "spawn", "log_max_bytes", "nonsense",
]  # fmt: skip
_SUP_KEYS = ["run_dir", "log_level", "log_format", "shutdown_timeout_s", "environment",
             "max_workers", "typo"]  # fmt: skip

_toml_scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | _text
    | st.sampled_from(['"5s"', '"500ms"', '"sleep 5"', '["true"]', '"SIGTERM"', '"always"'])
)
_toml_values = st.recursive(
    _toml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=6,
)


def _toml(value: Any) -> str:
    """A TOML inline value (the small writer the test needs; no dependency)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
            if not math.isfinite(value)
            else repr(value)
        )
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\\ud834\\udd1e", "\U0001d11e")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {_toml(v)}" for k, v in value.items()) + "}"  # fmt: skip


@given(
    st.dictionaries(st.sampled_from(_SUP_KEYS), _toml_values, max_size=4),
    st.dictionaries(
        st.sampled_from(["a", "b", "bad name", "x" * 70]),
        st.dictionaries(st.sampled_from(_BOT_KEYS), _toml_values, max_size=8),
        max_size=3,
    ),
)
def test_arbitrary_toml_raises_only_config_error(
    tmp_path_factory: Any, sup: dict[str, Any], bots: dict[str, dict[str, Any]]
) -> None:
    lines = ["[supervisor]", *(f"{k} = {_toml(v)}" for k, v in sup.items())]
    for name, table in bots.items():
        lines.append(f"[bots.{json.dumps(name)}]")
        lines += [f"{k} = {_toml(v)}" for k, v in table.items()]
    path = Path(tmp_path_factory.mktemp("toml")) / "supervisor.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with contextlib.suppress(ConfigError):
        config.load(path)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_as_config_raise_only_config_error(
    tmp_path_factory: Any, data: bytes
) -> None:
    path = Path(tmp_path_factory.mktemp("bytes")) / "supervisor.toml"
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        config.load(path)
