"""A PM2 `ecosystem.config.js` that is plain data -> JSON text. No code is ever run.

Accepted: `module.exports =` or `export default` before one object literal, `//` and
`/* */` comments, single- or double-quoted strings, backtick strings without `${}`,
unquoted keys, trailing commas, numbers, true/false/null. Anything else (`require(...)`,
`process.env.X`, `__dirname`, a function) is refused with its line: we do not execute code.
"""

from __future__ import annotations

import json
import re

from supervisor.cli.importers.common import SourceError

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<comment>//[^\n]*|/\*.*?\*/)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`$\\]*`)
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
      | (?P<punct>[{}\[\]:,])
    """,
    re.VERBOSE | re.DOTALL,
)
_PREFIX = re.compile(r"^\s*(?:module\.exports\s*=|export\s+default)\s*")
_LITERALS = {"true", "false", "null"}


def to_json(text: str, file: str) -> str:
    """The object literal of `text` as JSON text; SourceError naming the line otherwise."""
    body = _strip_prefix(text, file)
    offset = len(text) - len(body)
    tokens: list[str] = ["\n" * text.count("\n", 0, offset)]
    pos = 0
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if match is None:
            if body[pos:].strip() in ("", ";"):
                break
            _refuse(text, offset + pos, file, body[pos : pos + 20])
        assert match is not None
        kind, token = match.lastgroup, match[0]
        if kind == "name" and token not in _LITERALS and not _is_key(body, match.end()):
            _refuse(text, offset + pos, file, token)
        tokens.append(_json_token(kind or "", token))
        pos = match.end()
    return _drop_trailing_commas(tokens)


def _strip_prefix(text: str, file: str) -> str:
    without = _PREFIX.sub("", _blank_comments(text), count=1)
    if without == _blank_comments(text) and not without.lstrip().startswith("{"):
        raise SourceError(
            f"{file}:1: expected `module.exports = {{...}}` with plain data (code is not executed)"
        )
    return text[len(text) - len(without) :]


def _blank_comments(text: str) -> str:
    """Leading comments only: enough to find the `module.exports =` after them."""
    return re.sub(r"^(?:\s*(?://[^\n]*|/\*.*?\*/))*", "", text, flags=re.DOTALL)


def _is_key(body: str, end: int) -> bool:
    return body[end:].lstrip().startswith(":")


def _json_token(kind: str, token: str) -> str:
    if kind in ("space", "comment"):
        return "\n" * token.count("\n") or " "  # keep line numbers for the JSON parser
    if kind == "name":
        return token if token in _LITERALS else json.dumps(token)
    if kind == "string" and token[0] != '"':
        return json.dumps(_unquote(token))
    return token


def _unquote(token: str) -> str:
    """The value of a '...' or `...` string (JS escapes as far as JSON knows them)."""
    inner = token[1:-1]
    if token[0] == "`":
        return inner
    inner = inner.replace("\\'", "'").replace('"', '\\"')
    try:
        value = json.loads(f'"{inner}"')
    except json.JSONDecodeError:
        return inner
    return str(value)


def _drop_trailing_commas(tokens: list[str]) -> str:
    """JS allows `[1, 2,]` and `{a: 1,}`; JSON does not. Newlines stay, so lines match."""
    out = list(tokens)
    following = ""
    for index in range(len(out) - 1, -1, -1):
        if out[index] == "," and following in ("}", "]"):
            out[index] = " "
        if out[index].strip():
            following = out[index]
    return "".join(out)


def _refuse(text: str, pos: int, file: str, found: str) -> None:
    line = text.count("\n", 0, pos) + 1
    raise SourceError(
        f"{file}:{line}: expected plain data (strings, numbers, objects, arrays), got "
        f"{(found.split() or [found])[0]!r}: code in a .config.js is not "
        "executed; write the values out or export the config as JSON (pm2 ecosystem.json)"
    )
