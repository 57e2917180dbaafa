"""Keep native libraries' start-up chatter off the CLI's stderr (shown again with ``-v``).

TensorFlow logs from C++ while its shared libraries load: the oneDNN notice
("oneDNN custom operations are on ...") and absl's "All log messages before
absl::InitializeLog() ..." banner are written before ``TF_CPP_MIN_LOG_LEVEL``
is read, so no environment variable silences them. ``TF_ENABLE_ONEDNN_OPTS=0``
would, but it changes TensorFlow's floating-point results, so it is left
alone. Instead the first ``import tensorflow`` runs with file descriptor 2
captured; afterwards the captured text is written back to stderr without the
lines that are native log records (glog/absl format) or that banner, so
anything else printed during the import still shows. TensorFlow's Python
loggers (absl, tensorflow) are set to errors only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sentinel.model.backend import prepare_environment

#: Modules whose first import runs with native stderr captured and filtered.
NOISY_IMPORTS = ("tensorflow",)

#: Python loggers held at ERROR unless -v.
CHATTY_LOGGERS = ("tensorflow",)

_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    # an absl record: I0000 00:00:1795769037.71 4326 port.cc:153] ...
    r"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.+-]+:\d+\] .*"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] [\w/.+-]+:\d+\] .*"  # TF's older format
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)$"
)


def without_noise(text: str) -> str:
    """``text`` minus the native log records and banners listed in :data:`_NOISE` (other lines kept)."""
    return "".join(line for line in text.splitlines(keepends=True) if not _NOISE.match(line.rstrip("\r\n")))


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Capture file descriptor 2 (native and Python writes alike); write it back without the noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = without_noise(sink.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _FilteredLoader(importlib.abc.Loader):
    """Runs the wrapped loader's module code inside :func:`filtered_stderr`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        with filtered_stderr():
            self._loader.exec_module(module)
        for name in CHATTY_LOGGERS:  # the import may have set levels of its own
            logging.getLogger(name).setLevel(logging.ERROR)
        if "absl.logging" in sys.modules:
            sys.modules["absl.logging"].set_verbosity("error")

    def __getattr__(self, name: str) -> Any:  # get_filename, is_package, get_resource_reader, ...
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds :data:`NOISY_IMPORTS` as the other finders do, with the loader wrapped."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        self.names.discard(fullname)  # once: later lookups (and the one below) go to the real finders
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _FilteredLoader(spec.loader)
        return spec


def quiet_native_logs(verbose: bool, names: Sequence[str] = NOISY_IMPORTS) -> None:
    """Set up, before any of ``names`` is imported, how much native chatter reaches stderr.

    Quiet (the default): TensorFlow's C++ log level 2 (errors only, unless the
    environment sets one; :func:`sentinel.model.backend.prepare_environment`),
    the chatty Python loggers at ERROR, and the first import of each of
    ``names`` filtered. Verbose: TensorFlow logs everything.
    Idempotent; a module already imported is left as it is.
    """
    prepare_environment(verbose=verbose)
    if verbose:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        return
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    pending = [n for n in names if n not in sys.modules]
    if pending and not any(isinstance(f, _QuietFinder) and f.names >= set(pending) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder(pending))
