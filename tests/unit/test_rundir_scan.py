"""`load_run_dir` reads run_dir without tomllib only where that gives tomllib's answer."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.config import rundir

CASES = [
    ('[supervisor]\nrun_dir = "rd"\n', "rd"),
    ('[supervisor]  # ours\n  run_dir="a b/c"  # where\n\n[bots.w]\ncommand = ["x"]\n', "a b/c"),
    ('[bots.w]\ncommand = ["x"]\n[supervisor]\nrun_dir = "late"\n', "late"),
    ('[bots.w]\nrun_dir = "not ours"\n', None),  # another table's key
    ('supervisor.run_dir = "dotted"\n', None),  # not the plain form: tomllib reads it
    ('[supervisor]\nrun_dir = "esc\\\\aped"\n', None),  # escapes: tomllib's
    ("[supervisor]\nrun_dir = 'literal'\n", None),
    ('[supervisor]\nrun_dir = "a"\nx = """\nrun_dir = "b"\n"""\n', None),  # in a string
    ('[supervisor]\nlog_level = "debug"\n', None),  # absent: tomllib (and its errors)
    ('[supervisor]\nrun_dir = "a" # run_dir\n', None),  # said twice
]


@pytest.mark.parametrize(("text", "scanned"), CASES)
def test_the_scan_reads_only_the_plain_form(tmp_path: Path, text: str, scanned: str | None) -> None:
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    assert rundir._scan_run_dir(str(path)) == scanned
    if scanned is not None:
        assert tomllib.loads(text)["supervisor"]["run_dir"] == scanned


_piece = st.sampled_from(
    [
        "[supervisor]",
        "[bots.w]",
        "[[x.y]]",
        'run_dir = "r1"',
        'run_dir = "r 2"  # c',
        "run_dir = 'r3'",
        'other = "run_dir"',
        'x = """',
        '"""',
        "# run_dir",
        'name = "v"',
        "",
    ]
)


@given(st.lists(_piece, max_size=8))
def test_whenever_the_scan_answers_tomllib_agrees(lines: list[str]) -> None:
    """For any file the scan answers that tomllib can read, tomllib finds the same run_dir.

    (A TOML mistake elsewhere in the file, say a table declared twice, does not stop the
    scan: like load_run_dir's tomllib path, which ignores mistakes elsewhere, it lets
    `status` and `shutdown` reach a running supervisor; `supervisor check` names them.)
    """
    text = "\n".join(lines) + "\n"
    path = Path("/tmp") / f"rundir-scan-{abs(hash(text))}.toml"
    path.write_text(text)
    try:
        scanned = rundir._scan_run_dir(str(path))
    finally:
        path.unlink()
    if scanned is None:
        return
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    assert parsed["supervisor"]["run_dir"] == scanned
