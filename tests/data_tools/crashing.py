"""A stand-in decode function for the worker-crash tests (kept free of heavy imports, because
spawned workers import it)."""

import os


def decode_or_die(name: str) -> str:
    """Returns the name upper-cased; a name starting with "crash" kills the worker process, as a
    segfault in a decoder library would."""
    if name.startswith("crash"):
        os._exit(139)
    return name.upper()
