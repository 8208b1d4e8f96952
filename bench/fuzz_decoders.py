"""Coverage-guided fuzzing of the wire decoders with atheris (libFuzzer for Python).

    .venv/bin/pip install atheris        # not a dependency of ours; it installs here (3.0.0)
    .venv/bin/python -m bench.fuzz_decoders -atheris_runs=200000

Each input is fed to every decoder of untrusted frames; anything but ProtocolError is a crash
that libFuzzer reports with the input that caused it. The hypothesis properties in
tests/unit/test_fuzz.py cover the same decoders in CI; this finds what random inputs do not.
"""

from __future__ import annotations

import contextlib
import sys

from supervisor.errors import ProtocolError
from supervisor.wire import protocol

DECODERS = (
    protocol.decode_request,
    protocol.decode_reply,
    protocol.decode_batch,
    protocol.decode_commands,
)


def one_input(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(ProtocolError):
            decode(data)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
