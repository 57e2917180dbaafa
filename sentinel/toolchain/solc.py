"""Compile Solidity with the pinned npm ``solc`` (standard JSON, no download).

``solc.compile`` from the npm package runs the compiler's WebAssembly build
in-process under node: nothing is fetched, and the version is the one locked in
``package-lock.json``.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.errors import ChainError
from sentinel.toolchain.node import node, node_modules

#: Imports (``@openzeppelin/contracts/...``) resolve inside the pinned node_modules only, never elsewhere.
_COMPILE_JS = """
const fs = require('fs');
const path = require('path');
const solc = require(process.argv[1]);
const root = path.resolve(process.argv[2]);
function findImports(name) {
  const file = path.resolve(root, name);
  if (!file.startsWith(root + path.sep)) return {error: 'import outside node_modules: ' + name};
  try { return {contents: fs.readFileSync(file, 'utf8')}; }
  catch (e) { return {error: 'import not found in node_modules (run make setup): ' + name}; }
}
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const out = solc.compile(input, {import: findImports});
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(out)}));
});
"""


@dataclass(frozen=True)
class CompiledContract:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes  #: creation code
    runtime: bytes  #: deployed code
    compiler: str
    immutables: tuple[tuple[int, int], ...] = ()  #: (start, length) of every immutable in the runtime code


def compile_standard_json(request: dict[str, Any], timeout: float = 600.0) -> tuple[str, dict[str, Any]]:
    """Run one standard-JSON compilation; returns (compiler version, output)."""
    try:
        done = subprocess.run(
            [node(), "-e", _COMPILE_JS, str(node_modules() / "solc"), str(node_modules())],
            input=json.dumps(request), capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ChainError(f"solc did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ChainError(f"solc failed to run: {last}")
    try:
        payload = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise ChainError(f"solc printed something that is not JSON: {done.stdout[:200]!r}") from exc
    output = payload["output"]
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        first = errors[0]
        raise ChainError(f"solc: {first.get('formattedMessage', first.get('message', 'error')).strip().splitlines()[0]}"
                         + (f" [and {len(errors) - 1} more errors]" if len(errors) > 1 else ""))
    return payload["version"], output


#: What every compilation returns: ABI, creation and runtime code, and where the immutables sit.
OUTPUTS = ("abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.deployedBytecode.immutableReferences")


def standard_json(sources: dict[str, str], optimizer_runs: int) -> dict[str, Any]:
    """The standard-JSON request of every Sentinel compilation.

    ``sentinel circuit build``, ``sentinel deploy`` and the auditor's
    bytecode check all compile through here, so they get the same bytes:
    optimizer on with ``optimizer_runs``, legacy pipeline (no viaIR), EVM
    shanghai, and no metadata hash, so runtime code compares byte for byte.
    """
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": optimizer_runs},
            "viaIR": False,
            "evmVersion": "shanghai",
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {"*": {"*": list(OUTPUTS)}},
        },
    }


def compile_sources(sources: dict[str, str], *, optimizer_runs: int) -> dict[str, CompiledContract]:
    """Compile ``{file name: source}`` (see :func:`standard_json`); returns the contracts of those files by name.

    Imported files (OpenZeppelin's, from node_modules) are compiled with them but not returned.
    """
    version, output = compile_standard_json(standard_json(sources, optimizer_runs))
    contracts: dict[str, CompiledContract] = {}
    for file_name, file_contracts in output.get("contracts", {}).items():
        if file_name not in sources:
            continue
        for name, c in file_contracts.items():
            refs = c["evm"]["deployedBytecode"].get("immutableReferences", {})
            contracts[name] = CompiledContract(
                name=name,
                abi=c["abi"],
                bytecode=bytes.fromhex(c["evm"]["bytecode"]["object"]),
                runtime=bytes.fromhex(c["evm"]["deployedBytecode"]["object"]),
                compiler=version,
                immutables=tuple(sorted((int(r["start"]), int(r["length"])) for rs in refs.values() for r in rs)),
            )
    return contracts


def compile_files(paths: list[Path], *, optimizer_runs: int) -> dict[str, CompiledContract]:
    """Compile Solidity files (by base name) with :func:`compile_sources`."""
    sources = {}
    for path in paths:
        try:
            sources[Path(path).name] = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ChainError(f"{path}: cannot read Solidity source: {exc.strerror or exc}") from exc
    return compile_sources(sources, optimizer_runs=optimizer_runs)
