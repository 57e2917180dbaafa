"""The one seam to EZKL: every call goes through here.

EZKL's Python binding mixes plain and async functions (some need a running
event loop even to start), returns ``False`` or raises ``RuntimeError`` with
long messages; this adapter runs each call inside an event loop, awaits what
needs awaiting, and turns failures into :class:`CircuitError` naming the step.
``get_srs`` is deliberately absent: it downloads, and nothing may download.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from sentinel.errors import CircuitError


def _ezkl() -> ModuleType:
    """The ``ezkl`` module, its loggers quietened.

    Typed as a plain module: EZKL's stub declares ``PyRunArgs`` without its
    attributes, and its functions return ``Any`` anyway; :func:`call` is where
    results are checked.
    """
    import logging

    import ezkl

    logging.getLogger("ezkl").setLevel(logging.WARNING)  # its per-step INFO lines are not ours to show
    # It warns once per table per call when a table spans columns; the build reports the column count itself.
    logging.getLogger("ezkl.circuit.table").setLevel(logging.ERROR)
    return ezkl


def version() -> str:
    """Installed EZKL version."""
    from importlib.metadata import version as v

    return v("ezkl")


def call(step: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run an EZKL function inside an event loop; a falsy result or exception is a CircuitError."""

    async def runner() -> Any:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    try:
        result = asyncio.run(runner())
    except CircuitError:
        raise
    except Exception as exc:  # EZKL raises RuntimeError/ValueError/panics as exceptions
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CircuitError(f"EZKL {step} failed: {message}") from exc
    if result is False:
        raise CircuitError(f"EZKL {step} failed (returned False)")
    return result


def run_args(input_visibility: str, param_visibility: str, output_visibility: str, check_mode: str,
             num_inner_cols: int, decomp_base: int | None = None, decomp_legs: int | None = None) -> Any:
    """``PyRunArgs`` with Sentinel's visibility and safety choices.

    Integer-valued constants keep scale 0 (``rebase_frac_zero_constants``):
    the model's circuit form pools and scales with integer weights, and a
    product with a scale-0 constant needs no rescale.
    """
    args = _ezkl().PyRunArgs()
    args.rebase_frac_zero_constants = True
    if decomp_base:
        args.decomp_base = decomp_base
    if decomp_legs:
        args.decomp_legs = decomp_legs
    args.input_visibility = input_visibility
    args.param_visibility = param_visibility
    args.output_visibility = output_visibility
    args.check_mode = check_mode
    args.num_inner_cols = num_inner_cols
    return args


def default_run_args() -> Any:
    """``PyRunArgs()`` untouched: EZKL's defaults (input public, params fixed, UNSAFE, 2 inner columns)."""
    return _ezkl().PyRunArgs()


def gen_settings(onnx: Path, settings: Path, args: Any) -> None:
    call("gen_settings", _ezkl().gen_settings, str(onnx), str(settings), py_run_args=args)


def calibrate(data: Path, onnx: Path, settings: Path, scales: list[int] | None, max_logrows: int | None) -> None:
    kwargs: dict[str, Any] = {}
    if scales:
        kwargs["scales"] = scales
    if max_logrows:
        kwargs["max_logrows"] = max_logrows
    call("calibrate_settings", _ezkl().calibrate_settings, str(data), str(onnx), str(settings), "resources", **kwargs)


def compile_circuit(onnx: Path, compiled: Path, settings: Path) -> None:
    call("compile_circuit", _ezkl().compile_circuit, str(onnx), str(compiled), str(settings))


def gen_srs(srs: Path, logrows: int) -> None:
    call("gen_srs", _ezkl().gen_srs, str(srs), logrows)


def setup(compiled: Path, vk: Path, pk: Path, srs: Path) -> None:
    call("setup", _ezkl().setup, str(compiled), str(vk), str(pk), str(srs))


def gen_witness(data: Path, compiled: Path, witness: Path) -> dict[str, Any]:
    """Run the circuit's forward pass; returns the witness file's JSON."""
    import json

    call("gen_witness", _ezkl().gen_witness, str(data), str(compiled), str(witness))
    try:
        doc = json.loads(Path(witness).read_text())
    except (OSError, ValueError) as exc:
        raise CircuitError(f"EZKL gen_witness wrote no readable witness: {exc}") from exc
    if not isinstance(doc, dict):
        raise CircuitError(f"EZKL gen_witness wrote no readable witness: {witness} holds no JSON object")
    return doc


def prove(witness: Path, compiled: Path, pk: Path, proof: Path, srs: Path) -> None:
    """Prove ``witness``; the proof is written to ``proof``."""
    call("prove", _ezkl().prove, str(witness), str(compiled), str(pk), str(proof), str(srs))


def verify(proof: Path, settings: Path, vk: Path, srs: Path) -> bool:
    """True if the proof verifies; False if it does not (EZKL raises for an invalid proof)."""
    try:
        return bool(call("verify", _ezkl().verify, str(proof), str(settings), str(vk), str(srs)))
    except CircuitError:
        return False


def render_evm_verifier(vk: Path, settings: Path, sol: Path, abi: Path, srs: Path) -> str | None:
    """Render the Solidity verifier; returns EZKL's complaint if it then failed (it tries to fetch solc).

    ``create_evm_verifier`` writes the ``.sol`` and only afterwards looks for
    solc 0.8.20, which it tries to download; offline that fails. The caller
    checks the rendered source is complete and compiles it with npm solc.
    """
    try:
        call("create_evm_verifier", _ezkl().create_evm_verifier, str(vk), str(settings), str(sol), str(abi), str(srs))
    except CircuitError as exc:
        return str(exc)
    return None
