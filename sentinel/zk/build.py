"""``sentinel circuit build``: ONNX -> settings -> compiled circuit -> keys -> verifier.

Steps, each shown through ``progress``: settings (input hashed with Poseidon,
weights fixed, score public, SAFE checks), calibration on real test windows,
compile, SRS (a ceremony file the user gives, else a locally generated one
that is loudly TEST ONLY), setup (vk, pk), fidelity (circuit score vs
onnxruntime over test windows, else the build fails with the numbers), the
Solidity verifier (rendered by EZKL, compiled by the pinned npm solc), and a
manifest with the sha256 of every artifact.

The build is content-addressed: its *input key* hashes the ONNX, the circuit
configuration, the SRS and the EZKL version. When the manifest's key matches
and every artifact still has its recorded hash, the build is skipped.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinel.artifacts import ArtifactLayout, atomic_write_text, sha256_file
from sentinel.config import CircuitConfig, SentinelConfig, parse_scales
from sentinel.errors import CircuitError
from sentinel.zk import ezkl_api
from sentinel.zk.layout import instance_layout
from sentinel.zk.manifest import load_manifest

if TYPE_CHECKING:
    from sentinel.model.dataset import LabeledWindows
    from sentinel.toolchain.solc import CompiledContract

MANIFEST_VERSION = 1
TEST_SRS_WARNING = (
    "TEST-ONLY SRS: generated locally by ezkl.gen_srs, whose secret was not destroyed by a ceremony; "
    "anyone holding it could forge proofs. Pass --srs with a ceremony (perpetual powers of tau) file for production."
)

#: progress(step, detail) before each slow step.
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class BuildResult:
    """What ``circuit build`` did (for the single set; ``batch`` for the batch set, if configured)."""

    manifest: dict[str, Any]
    skipped: bool
    seconds: dict[str, float]
    batch: BuildResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"skipped": self.skipped, "seconds": self.seconds, "manifest": self.manifest}
        if self.batch is not None:
            out["batch"] = self.batch.to_dict()
        return out


def _input_key(onnx_sha: str, circuit: CircuitConfig, srs_sha: str | None, window: int) -> str:
    # batch_windows shapes only the batch set (its own key), not the single circuit.
    settings = {name: value for name, value in asdict(circuit).items() if name != "batch_windows"}
    payload = json.dumps(
        {"onnx": onnx_sha, "circuit": settings, "srs": srs_sha, "ezkl": ezkl_api.version(), "window": window},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def up_to_date(layout: ArtifactLayout, key: str) -> dict[str, Any] | None:
    """The circuit set's manifest if it was built from input ``key`` and every artifact still has its hash."""
    try:
        manifest = load_manifest(layout)
    except CircuitError:  # none yet, or unreadable: build
        return None
    if manifest.get("input_key") != key:
        return None
    for entry in manifest.get("artifacts", {}).values():
        file = layout.root / entry["path"]
        if not file.exists() or sha256_file(file) != entry["sha256"]:
            return None
    # The proving key is not in the manifest: a missing one is regenerated on
    # first prove (deterministic from the built circuit and SRS), not here.
    return manifest


def sample_windows(test: LabeledWindows, n: int, seed: int) -> np.ndarray:
    """``n`` of the labelled ``test`` windows, half from crashes when there are enough, in row order."""
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(test.y > 0)
    neg = np.flatnonzero(test.y == 0)
    k = min(n // 2, len(pos))
    pick = np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, min(n - k, len(neg)), replace=False)])
    chosen: np.ndarray = test.x[np.sort(pick)]
    return chosen


def stress_windows(base: np.ndarray) -> np.ndarray:
    """Extreme but valid windows derived from ``base`` (W, 4), shape (4, W, 4).

    Calibration sizes the circuit's lookup and range-check tables to what it
    sees; a window outside them cannot be proven, and a breaker must be able
    to prove exactly the unusual windows. Features are clipped inside the
    model, so these bound what any real window can reach.
    """
    out = np.repeat(base[None].astype(np.float64), 4, axis=0)
    w = base.shape[0]
    ramp = np.linspace(1.0, 0.0, w)
    out[0, :, 1] *= 1 + 19 * (1 - ramp)  # buy depth x20 by the end
    out[0, :, 0] = out[0, :, 1] / out[0, :, 2]
    out[1, :, 2] *= 1 + 19 * (1 - ramp)  # sell depth x20: BLR collapses
    out[1, :, 0] = out[1, :, 1] / out[1, :, 2]
    out[2, :, 3] *= 0.6 + 0.4 * ramp  # price -40 %
    out[3, :, 3] *= 1.4 - 0.4 * ramp  # price +40 %
    return out


def input_json(windows: np.ndarray) -> dict[str, Any]:
    """EZKL input data for one or more (W, 4) windows (concatenated samples)."""
    return {"input_data": [np.asarray(windows, dtype=np.float64).reshape(-1).tolist()]}


def _fidelity(workdir: Path, compiled: Path, onnx: Path, windows: np.ndarray) -> dict[str, Any]:
    from sentinel.model.export import onnx_scores
    from sentinel.zk.witness import witness_score

    floats = onnx_scores(onnx, windows.astype(np.float32))
    circuit = np.empty(len(windows))
    for i, window in enumerate(windows):
        data = workdir / f"fidelity-{i}.json"
        data.write_text(json.dumps(input_json(window[None])))
        witness = ezkl_api.gen_witness(data, compiled, workdir / f"fidelity-{i}.witness.json")
        circuit[i] = witness_score(witness)
    err = np.abs(circuit - floats)
    worst = int(np.argmax(err))
    return {
        "windows": len(windows), "max_abs_error": float(err.max()), "mean_abs_error": float(err.mean()),
        "worst": {"circuit": float(circuit[worst]), "float": float(floats[worst])},
    }


def self_check(workdir: Path, compiled: Path, pk: Path, vk: Path, settings: Path, srs: Path,
               window: np.ndarray, label: str) -> dict[str, Any]:
    """Prove ``window`` (described by ``label``) with the new keys and verify the proof with the new vk.

    A witness can be right while the circuit's constraints are wrong: EZKL
    23.0.5 lays out some ops (a three-operand ``Einsum``) with constraints
    their own witness does not satisfy, so every proof fails to verify while
    the fidelity check, which compares witnesses, passes. One proof at build
    time turns that into a build error instead of a circuit no proof can pass.
    """
    from sentinel.zk.witness import witness_score

    data, witness = workdir / "self-check.json", workdir / "self-check.witness.json"
    proof = workdir / "self-check.proof.json"
    data.write_text(json.dumps(input_json(window[None])))
    start = time.perf_counter()
    score = witness_score(ezkl_api.gen_witness(data, compiled, witness))
    try:
        ezkl_api.prove(witness, compiled, pk, proof, srs)
    except CircuitError as exc:
        raise CircuitError(f"self-check: proving the {label} failed ({exc}); the circuit cannot prove "
                           "what calibration accepted") from None
    seconds = time.perf_counter() - start
    if not ezkl_api.verify(proof, settings, vk, srs):
        raise CircuitError(f"self-check: the circuit's own proof of the {label} does not verify with its vk: "
                           "EZKL laid out constraints its witness does not satisfy (an unsupported op form?)")
    return {"window": label, "score": score, "verified": True, "prove_seconds": round(seconds, 2)}


#: Rows of a 2**k circuit that hold no table entries (halo2 blinding factors
#: and EZKL's padding), with room to spare.
RESERVED_ROWS = 32
#: Slack on the proven activation bound for fixed-point rounding on the way
#: to a lookup (a few quanta per product, relative and absolute).
BOUND_SLACK = (0.02, 64)


def size_lookup_tables(run_args: dict[str, Any], num_rows: int, bound: float, max_columns: int = 1) -> dict[str, Any]:
    """Lookup range and logrows from the model's proven activation bound.

    Calibration sizes the lookup table from the values it happened to see
    (plus a margin), which both wastes rows and leaves unseen windows
    unprovable. The model's weights bound every lookup input by
    ``bound`` (:func:`sentinel.model.network.activation_bound`), so the table
    is ``+-bound * 2**scale`` plus rounding slack. logrows is the smallest
    that holds the circuit's rows, the range-check table, and the lookup
    table laid over at most ``max_columns`` columns. More columns prove faster
    than more rows but grow the Solidity verifier (docs/circuit-sweep.md).
    """
    scale = int(run_args["input_scale"])
    relative, absolute = BOUND_SLACK
    half = math.ceil(bound * 2**scale * (1 + relative)) + absolute
    needed = max(int(num_rows), int(run_args.get("decomp_base") or 0),
                 math.ceil((2 * half + 1) / max(1, int(max_columns))))
    logrows = max(1, math.ceil(math.log2(needed + RESERVED_ROWS)))
    return {**run_args, "lookup_range": [-half, half], "logrows": logrows}


def table_columns(run_args: dict[str, Any]) -> int:
    """Columns the lookup table spans at the settings' logrows."""
    lookup: list[int] = run_args["lookup_range"]
    low, high = lookup
    rows: int = 2 ** int(run_args["logrows"]) - RESERVED_ROWS
    return math.ceil((high - low + 1) / rows)


def write_verifier_artifact(path: Path, verifier: Any, optimizer_runs: int) -> None:
    """``Halo2Verifier.json``: the compiled verifier's ABI, creation and runtime code, compiler and optimizer runs."""
    atomic_write_text(path, json.dumps({
        "contractName": "Halo2Verifier", "abi": verifier.abi, "bytecode": "0x" + verifier.bytecode.hex(),
        "deployedBytecode": "0x" + verifier.runtime.hex(), "compiler": verifier.compiler,
        "optimizer_runs": optimizer_runs,
    }, indent=1) + "\n")


def resolve_srs(layout: ArtifactLayout, srs: Path | None, logrows: int, say: Progress,
                step: str) -> tuple[Path, str]:
    """The SRS to set up with and its kind: ``srs`` (a ceremony file) if given, else this set's TEST-ONLY one for
    ``logrows``, generated locally when absent."""
    if srs is not None:
        return Path(srs), "user-supplied"
    path = layout.test_srs(logrows)
    if not path.exists():
        say(step, f"generating a TEST-ONLY SRS for 2^{logrows} rows")
        ezkl_api.gen_srs(path, logrows)
    return path, "test-only (ezkl.gen_srs)"


def build_circuit(
    layout: ArtifactLayout,
    config: SentinelConfig,
    srs: Path | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> BuildResult:
    """Build (or confirm up to date) every circuit artifact under ``circuits/``."""
    from sentinel.model.pipeline import card_test_windows, load_card

    say = progress or (lambda step, detail: None)
    circuit = config.circuit
    card = load_card(layout)
    window = int(card["config"]["window"])
    onnx = layout.onnx_model
    if not onnx.exists():
        raise CircuitError(f"{onnx}: no ONNX model; run `sentinel train` (or `sentinel export`)")
    onnx_sha = sha256_file(onnx)
    if onnx_sha != card["model"]["onnx_sha256"]:
        raise CircuitError(f"{onnx}: sha256 differs from the model card's; run `sentinel export`")
    if srs is not None and not Path(srs).is_file():
        raise CircuitError(f"{srs}: SRS file does not exist")
    user_srs_sha = sha256_file(srs) if srs is not None else None

    key = _input_key(onnx_sha, circuit, user_srs_sha, window)
    if not force and (manifest := up_to_date(layout, key)) is not None:
        return _with_batch(layout, config, BuildResult(manifest, skipped=True, seconds={}), srs,
                           force=force, say=say)

    seconds: dict[str, float] = {}
    layout.ensure(layout.circuits_dir)
    with tempfile.TemporaryDirectory(prefix="sentinel-circuit-") as tmp:
        work = Path(tmp)
        settings, compiled = work / "settings.json", work / "model.compiled"
        vk, pk = work / "vk.key", work / "pk.key"
        sol, abi = work / "Halo2Verifier.sol", work / "Halo2Verifier.abi"

        t = time.perf_counter()
        say("settings", "input hashed (Poseidon), weights fixed, score public, SAFE checks")
        args = ezkl_api.run_args(circuit.input_visibility, circuit.param_visibility, circuit.output_visibility,
                                 circuit.check_mode, circuit.num_inner_cols, circuit.decomp_base, circuit.decomp_legs)
        ezkl_api.gen_settings(onnx, settings, args)
        calibration = work / "calibration.json"
        test = card_test_windows(layout, config)
        seed = int(card["config"]["seed"])
        calibration_windows = sample_windows(test, circuit.calibration_windows, seed + 101)
        calibration.write_text(json.dumps(input_json(np.concatenate([calibration_windows,
                                                                     stress_windows(calibration_windows[0])]))))
        say("calibrate", f"{circuit.calibration_windows} test windows, target: resources")
        ezkl_api.calibrate(calibration, onnx, settings, parse_scales(circuit.scales), circuit.max_logrows or None)
        bound = (card["model"].get("activation_bound") or {}).get("max")
        if bound is not None:
            calibrated = json.loads(settings.read_text())
            calibrated["run_args"] = size_lookup_tables(calibrated["run_args"], calibrated["num_rows"], bound,
                                                        circuit.lookup_columns)
            settings.write_text(json.dumps(calibrated))
            sized = calibrated["run_args"]
            say("tables", f"lookup table from the proven bound {bound:.2f}: range {sized['lookup_range']}, "
                          f"2^{sized['logrows']} rows, {table_columns(sized)} column(s)")
        seconds["calibrate"] = time.perf_counter() - t

        t = time.perf_counter()
        say("compile", "compiling the circuit")
        ezkl_api.compile_circuit(onnx, compiled, settings)
        seconds["compile"] = time.perf_counter() - t
        settings_doc = json.loads(settings.read_text())
        run_args = settings_doc["run_args"]
        logrows = int(run_args["logrows"])
        layout_info = instance_layout(settings_doc)

        t = time.perf_counter()
        srs_path, srs_kind = resolve_srs(layout, srs, logrows, say, "srs")
        seconds["srs"] = time.perf_counter() - t

        t = time.perf_counter()
        say("setup", f"proving and verifying keys for 2^{logrows} rows")
        ezkl_api.setup(compiled, vk, pk, srs_path)
        seconds["setup"] = time.perf_counter() - t

        t = time.perf_counter()
        say("fidelity", f"circuit vs onnxruntime on {circuit.fidelity_windows} test windows")
        fidelity = _fidelity(work, compiled, onnx, sample_windows(test, circuit.fidelity_windows, seed + 202))
        seconds["fidelity"] = time.perf_counter() - t
        if not fidelity["max_abs_error"] <= circuit.fidelity_tolerance:
            raise CircuitError(
                f"fidelity: max |circuit - float| = {fidelity['max_abs_error']:.4f} over {fidelity['windows']} windows "
                f"exceeds {circuit.fidelity_tolerance} (worst: circuit {fidelity['worst']['circuit']:.4f} vs float "
                f"{fidelity['worst']['float']:.4f}); raise circuit.scales"
            )

        t = time.perf_counter()
        say("self-check", "prove one stress window with the new keys and verify the proof")
        check = self_check(work, compiled, pk, vk, settings, srs_path, stress_windows(calibration_windows[0])[1],
                           "stress window (sell depth x20: BLR collapses)")
        seconds["self_check"] = time.perf_counter() - t

        t = time.perf_counter()
        say("verifier", "rendering Halo2Verifier.sol and compiling it with npm solc")
        verifier = solidity_verifier(vk, settings, sol, abi, srs_path, circuit.optimizer_runs)
        seconds["verifier"] = time.perf_counter() - t

        # Everything succeeded: move the artifacts into place (pk last: it is the slowest to copy).
        targets = {
            "settings": (settings, layout.circuit_settings),
            "compiled_circuit": (compiled, layout.compiled_circuit),
            "vk": (vk, layout.vk),
            "verifier_source": (sol, layout.verifier_sol),
            "calibration_data": (calibration, layout.calibration_data),
        }
        for _name, (src, dst) in targets.items():
            shutil.copyfile(src, dst)
        write_verifier_artifact(layout.verifier_artifact, verifier, circuit.optimizer_runs)
        shutil.copyfile(pk, layout.pk)
    atomic_write_text(layout.pk.with_name(layout.pk.name + ".build"), key + "\n")

    def entry(path: Path) -> dict[str, str]:
        return {"path": str(path.relative_to(layout.root)), "sha256": sha256_file(path)}

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "input_key": key,
        # The hash chain an auditor follows: ONNX -> settings -> compiled circuit -> vk -> verifier.
        "artifacts": {
            "onnx": entry(onnx),
            "settings": entry(layout.circuit_settings),
            "compiled_circuit": entry(layout.compiled_circuit),
            "vk": entry(layout.vk),
            "verifier_source": entry(layout.verifier_sol),
            "verifier_artifact": entry(layout.verifier_artifact),
            "calibration_data": entry(layout.calibration_data),
        },
        "verifier_runtime_sha256": hashlib.sha256(verifier.runtime).hexdigest(),
        "verifier_runtime_bytes": len(verifier.runtime),
        "pk_sha256": sha256_file(layout.pk),
        "pk_bytes": layout.pk.stat().st_size,
        "srs": {"kind": srs_kind, "path": str(srs_path if srs is not None else srs_path.relative_to(layout.root)),
                "sha256": sha256_file(srs_path), "logrows": logrows,
                "warning": TEST_SRS_WARNING if srs is None else None},
        "circuit": {
            "logrows": logrows, "num_rows": settings_doc.get("num_rows"),
            "input_scale": run_args["input_scale"], "param_scale": run_args["param_scale"],
            "num_inner_cols": run_args["num_inner_cols"],
            "lookup_range": run_args["lookup_range"], "check_mode": run_args["check_mode"],
            "lookup_table_columns": table_columns(run_args),
            "activation_bound": bound,
            "visibility": {"input": circuit.input_visibility, "params": circuit.param_visibility,
                           "output": circuit.output_visibility},
        },
        "instances": layout_info.to_dict(),
        "window": window,
        "cadence_seconds": circuit.cadence_seconds,
        "fidelity": fidelity,
        "self_check": check,
        "build_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "versions": {"ezkl": ezkl_api.version(), "solc": verifier.compiler},
    }
    atomic_write_text(layout.circuit_manifest, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return _with_batch(layout, config, BuildResult(manifest, skipped=False, seconds=seconds), srs,
                       force=force, say=say)


def _with_batch(layout: ArtifactLayout, config: SentinelConfig, single: BuildResult, srs: Path | None, *,
                force: bool, say: Progress) -> BuildResult:
    """Build the batch set when ``circuit.batch_windows`` >= 2; the single manifest records it (or null)."""
    from sentinel.zk.batch import build_batch_circuit

    k = config.circuit.batch_windows
    batch = build_batch_circuit(layout, config, single.manifest, srs, force=force, say=say) if k else None
    entry = None if batch is None else {
        "windows": k, "manifest": str(layout.batch().circuit_manifest.relative_to(layout.root))}
    manifest = single.manifest
    if manifest.get("batch", "unset") != entry:
        manifest = {**manifest, "batch": entry}
        atomic_write_text(layout.circuit_manifest, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return BuildResult(manifest, single.skipped, single.seconds, batch)


def solidity_verifier(vk: Path, settings: Path, sol: Path, abi: Path, srs: Path,
                      optimizer_runs: int) -> CompiledContract:
    """Render ``Halo2Verifier.sol`` for ``vk`` and compile it with the pinned npm solc (a ``CompiledContract``)."""
    from sentinel.toolchain.solc import compile_files

    complaint = ezkl_api.render_evm_verifier(vk, settings, sol, abi, srs)
    check_verifier_source(sol, complaint)
    compiled = compile_files([sol], optimizer_runs=optimizer_runs)
    if "Halo2Verifier" not in compiled:
        raise CircuitError(f"{sol}: solc produced no Halo2Verifier contract")
    return compiled["Halo2Verifier"]


def check_verifier_source(sol: Path, complaint: str | None) -> None:
    """The rendered verifier must be complete even though EZKL then failed to fetch solc."""
    if not sol.exists():
        raise CircuitError(f"EZKL rendered no verifier source ({complaint or 'no reason given'})")
    text = sol.read_text(encoding="utf-8", errors="replace")
    complete = (
        "contract Halo2Verifier" in text
        and "function verifyProof(" in text
        and text.rstrip().endswith("}")
        and text.count("{") == text.count("}")
    )
    if not complete:
        raise CircuitError(f"{sol}: EZKL's verifier source is truncated or malformed ({complaint or 'no error'})")
    if complaint is not None and "svm" not in complaint and "solc" not in complaint.lower():
        raise CircuitError(f"EZKL create_evm_verifier failed for another reason than fetching solc: {complaint}")

