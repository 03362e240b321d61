"""TF.js under node as the reference for the TF.js -> ONNX converter: install and run tests/node.

tests/node is a tiny node project (exact versions pinned in package.json and package-lock.json) with
TF.js's core, converter and pure-JS CPU backend; ``tfjs_run.js`` loads a model.json and its shards from
local files (nothing is downloaded at run time) and executes it on many inputs in one node process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "tfjs_run.js"
_DTYPES = {"int32": np.dtype("<i4"), "float32": np.dtype("<f4"), "bool": np.dtype("u1")}


def missing_tools() -> str | None:
    """Why the TF.js reference cannot run here (node or npm not on PATH), or None."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not on PATH (the TF.js reference runs under node)" if missing else None


def _installed() -> bool:
    """node_modules matches package-lock.json (npm ci writes node_modules/.package-lock.json)."""
    try:
        wanted = json.loads((NODE_DIR / "package-lock.json").read_text())["packages"]
        have = json.loads((NODE_DIR / "node_modules" / ".package-lock.json").read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return False
    wanted = {k: v.get("version") for k, v in wanted.items() if k}
    have = {k: v.get("version") for k, v in have.items() if k}
    return wanted == have


def ensure_installed(timeout: float = 600) -> None:
    """``npm ci`` in tests/node unless its node_modules already matches the lock file; raises
    RuntimeError (with npm's last lines) when npm fails."""
    if _installed():
        return
    result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)], cwd=NODE_DIR,
                            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0 or not _installed():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"npm ci --prefix {NODE_DIR} failed (exit {result.returncode}):\n{tail}")


class TfjsRunner:
    """Runs TF.js graph models under node: :meth:`start` a job (one node process, many inputs), then
    :meth:`TfjsJob.result`. Several jobs may run at once."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._jobs = 0

    def start(self, model_json: Path, runs: list[tuple[dict[str, np.ndarray], list[str]]], *,
              weights: list[Path] | None = None) -> "TfjsJob":
        """Start executing ``model_json`` on each ``(inputs, output names)``; output names may be any
        node of the graph (``"node"`` or ``"node:k"``), Const nodes (the decoded weights) included."""
        self._jobs += 1
        folder = self.workdir / f"job{self._jobs}"
        folder.mkdir()
        job_runs = []
        for r, (inputs, outputs) in enumerate(runs):
            specs = {}
            for k, (name, array) in enumerate(inputs.items()):
                array = np.asarray(array)
                dtype = {np.dtype("int32"): "int32", np.dtype("float32"): "float32", np.dtype("bool"): "bool"}[array.dtype]
                path = folder / f"in{r}_{k}.bin"
                array.astype(_DTYPES[dtype]).tofile(path)
                specs[name] = {"file": str(path), "dtype": dtype, "shape": list(array.shape)}
            job_runs.append({"inputs": specs, "outputs": list(outputs), "prefix": str(folder / f"out{r}")})
        job = {"model": str(model_json), "runs": job_runs}
        if weights:
            job["weights"] = [str(w) for w in weights]
        (folder / "job.json").write_text(json.dumps(job))
        return TfjsJob(folder)

    def run(self, model_json: Path, runs, *, weights=None, timeout: float = 300) -> list[dict[str, np.ndarray]]:
        return self.start(model_json, runs, weights=weights).result(timeout)


class TfjsJob:
    """One node process running a job; :meth:`result` waits for it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.ms: list[float] = []
        self._stdout = open(folder / "stdout.txt", "w+")
        self._stderr = open(folder / "stderr.txt", "w+")
        self._process = subprocess.Popen(["node", str(SCRIPT), str(folder / "job.json")], stdout=self._stdout,
                                         stderr=self._stderr, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        """Stop the node process (when the test fails before it needs the result)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def result(self, timeout: float = 300) -> list[dict[str, np.ndarray]]:
        """One ``{output name: array}`` per run; RuntimeError when node fails or runs past ``timeout``."""
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            raise RuntimeError(f"tfjs_run.js ran past {timeout} s ({self.folder})") from None
        finally:
            self._stdout.close()
            self._stderr.close()
        stdout = (self.folder / "stdout.txt").read_text()
        if code != 0:
            stderr = (self.folder / "stderr.txt").read_text()
            raise RuntimeError(f"tfjs_run.js failed (exit {code}): {stderr.strip()[-2000:]}")
        report = json.loads(stdout.strip().splitlines()[-1])
        self.ms = report["ms"]
        out = []
        for written in report["runs"]:
            arrays = {}
            for o in written:
                array = np.fromfile(o["file"], dtype=_DTYPES[o["dtype"]]).reshape(o["shape"])
                arrays[o["name"]] = array.astype(bool) if o["dtype"] == "bool" else array
            out.append(arrays)
        return out
