"""TensorFlow and Keras, imported in one place with the environment they read at import time.

Keras picks its backend from ``KERAS_BACKEND`` and TensorFlow its C++ log
level from ``TF_CPP_MIN_LOG_LEVEL`` when first imported, so every import of
either in Sentinel goes through :func:`import_keras` or
:func:`import_tensorflow`. The CLI calls :func:`prepare_environment` with
``-v`` before any command runs (:mod:`sentinel.cli.quiet`); library callers
get the quiet default. A value already in the environment is always kept.
"""

from __future__ import annotations

import os
from typing import Any

#: ``TF_CPP_MIN_LOG_LEVEL``: errors only (quiet, the default) or everything (verbose).
TF_LOG_LEVEL = {False: "2", True: "0"}


def prepare_environment(*, verbose: bool = False) -> None:
    """Set what TensorFlow and Keras read at import, unless the environment already sets it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL[verbose])
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_keras() -> Any:
    """The ``keras`` module (untyped), on the TensorFlow backend with its C++ log quietened."""
    prepare_environment()
    import keras

    return keras


def import_tensorflow() -> Any:
    """The ``tensorflow`` module (untyped), its C++ log quietened."""
    prepare_environment()
    import tensorflow

    return tensorflow
