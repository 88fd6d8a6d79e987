"""What the sandbox and the executor add to each job, against the same method run in-process.

Variants, interleaved run by run so machine drift hits them alike:
  in-process  predict_public(...) in this Python, imports already warm (the lower bound);
  subprocess  `autow2s predict ...` as a plain child process (what any out-of-process job pays);
  sandboxed   the same command as a LocalExecutor job in a fresh sandbox: bubblewrap, limits,
              monitor, logs, a new interpreter and a torch import (a cold job);
  warm        the same job with warm=True, as researchers' experiments run: the workspace's warm
              sandbox forks it from a worker that has torch and autow2s imported already.
Plus `true` as a plain subprocess and as cold and warm jobs: the fixed cost with nothing to run.

Goals (issue 4): <= 0.3 s added per job locally; <= 5% of a 10 s experiment.

    .venv/bin/python benchmarks/sandbox_overhead.py [--repeats 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autow2s.executor import JobSpec, LocalExecutor
from autow2s.sandbox import Limits

FAST_METHOD = "def run(ctx):\n    return ctx.weak_soft_labels('test')\n"
# The vanilla baseline trained `repeats` times over: a stand-in for a ~10 s experiment.
REPEATED_VANILLA = """from autow2s.testbed.methods.registry import load_method


def run(ctx):
    vanilla = load_method("vanilla")
    for _ in range({repeats} - 1):
        vanilla.run(ctx)
    return vanilla.run(ctx)
"""
console = Console(width=170)


PARENT_CPU: list[float] = []  # this process's CPU seconds per sandboxed job: monitor, pumps, bookkeeping


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _sandboxed_timed(fn: Callable[[], object]) -> float:
    cpu = time.process_time()
    seconds = _timed(fn)
    PARENT_CPU.append((time.process_time() - cpu) / seconds)
    return seconds


def _check(done: subprocess.CompletedProcess[bytes]) -> None:
    if done.returncode != 0:
        raise SystemExit(f"benchmark job failed:\n{done.stderr.decode()[-2000:]}")


def measure(method: str, public: Path, root: Path, repeats: int, executor: LocalExecutor) -> dict[str, list[float]]:
    """Seconds per run of `method` in each variant."""
    from autow2s.testbed.methods.registry import load_method
    from autow2s.testbed.public_run import predict_public

    workspace = root / f"ws-{Path(method).name}"
    workspace.mkdir(exist_ok=True)
    method_arg = method
    if Path(method).is_dir():  # the sandbox sees the workspace only: copy the method in
        (workspace / "method").mkdir(exist_ok=True)
        (workspace / "method" / "method.py").write_text((Path(method) / "method.py").read_text())
        method_arg = "/workspace/method"
    autow2s = str(Path(sys.executable).parent / "autow2s")
    plain = [autow2s, "predict", "--public", str(public), "--method", method, "--seed", "0",
             "--out", str(workspace / "plain.json")]
    boxed = ("autow2s", "predict", "--public", "/task", "--method", method_arg, "--seed", "0",
             "--out", "/workspace/boxed.json")
    loaded = load_method(method)
    predict_public(public, loaded, 0)  # warm the in-process imports once, as a long-lived lab would be

    def sandboxed(warm: bool) -> None:
        result = executor.result(executor.submit(JobSpec(command=boxed, workspace=workspace, task_data=public,
                                                         cpus=executor.total_cpus, limits=Limits(wall_seconds=600),
                                                         warm=warm)))
        if not result.ok:
            raise SystemExit(f"sandboxed job failed: {result.error}\n{result.stderr_tail}")

    sandboxed(warm=True)  # start the workspace's warm sandbox once, as a researcher's first job does
    times: dict[str, list[float]] = {"in-process": [], "subprocess": [], "sandboxed": [], "warm": []}
    for run in range(repeats):
        times["in-process"].append(_timed(lambda: predict_public(public, loaded, 0)))
        times["subprocess"].append(_timed(lambda: _check(subprocess.run(plain, capture_output=True))))
        times["sandboxed"].append(_sandboxed_timed(lambda: sandboxed(warm=False)))
        times["warm"].append(_sandboxed_timed(lambda: sandboxed(warm=True)))
        console.print(f"  {method} run {run + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    return times


def measure_command(command: list[str], root: Path, repeats: int, executor: LocalExecutor) -> dict[str, list[float]]:
    """A bare command as a plain subprocess and as a sandboxed job: the fixed cost per job."""
    workspace = root / "ws-command"
    workspace.mkdir(exist_ok=True)
    def job(warm: bool) -> None:
        executor.result(executor.submit(JobSpec(command=tuple(command), workspace=workspace, warm=warm)))

    job(warm=True)
    times: dict[str, list[float]] = {"subprocess": [], "sandboxed": [], "warm": []}
    for _ in range(repeats):
        times["subprocess"].append(_timed(lambda: subprocess.run(command, check=True, capture_output=True)))
        times["sandboxed"].append(_timed(lambda: job(warm=False)))
        times["warm"].append(_timed(lambda: job(warm=True)))
    return times


def ten_second_method(root: Path, public: Path) -> tuple[Path, int]:
    """A method dir that takes about 10 s in-process on this machine (vanilla, trained n times)."""
    from autow2s.testbed.methods.registry import load_method
    from autow2s.testbed.public_run import predict_public

    method_dir = root / "vanilla-x"
    method_dir.mkdir()
    repeats = 1
    for _ in range(3):  # rescale until one run takes about 10 s (repeated training gets faster)
        (method_dir / "method.py").write_text(REPEATED_VANILLA.format(repeats=repeats))
        method = load_method(str(method_dir))
        predict_public(public, method, 0)
        seconds = _timed(lambda: predict_public(public, method, 0))
        if 8.5 <= seconds <= 11.5:
            break
        repeats = max(1, round(repeats * 10.0 / seconds))
    (method_dir / "method.py").write_text(REPEATED_VANILLA.format(repeats=repeats))
    return method_dir, repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="skip the ~10 s vanilla experiment")
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="aw2s-bench-"))
    root.chmod(0o755)
    os.environ["AUTOW2S_CACHE_DIR"] = str(root / "cache")
    console.print(f"preparing synth-linear under {root} ...")
    subprocess.run([str(Path(sys.executable).parent / "autow2s"), "prepare", "synth-linear", "--out", str(root)],
                   check=True, capture_output=True)
    method_dir = root / "fast-method"
    method_dir.mkdir()
    (method_dir / "method.py").write_text(FAST_METHOD)

    executor = LocalExecutor(root / "logs")  # jobs take every CPU: same torch threads as the other variants
    results: dict[str, dict[str, list[float]]] = {
        "true": measure_command(["true"], root, args.repeats * 4, executor),
        "python -c 'import torch'": measure_command([sys.executable, "-c", "import torch"], root, args.repeats * 2,
                                                    executor),
    }
    results["predict, fast method (no training)"] = measure(str(method_dir), root / "public", root,
                                                            args.repeats, executor)
    if not args.quick:
        long_method, n = ten_second_method(root, root / "public")
        results[f"predict, vanilla x{n} (~10 s experiment)"] = measure(str(long_method), root / "public", root,
                                                                       args.repeats, executor)
    executor.shutdown()

    table = Table(title=f"sandbox + executor overhead per job: medians of {args.repeats}+ interleaved runs, "
                        f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}")
    for column in ("job", "in-process s", "subprocess s", "cold sandbox s", "warm sandbox s",
                   "cold added vs in-process", "warm added vs in-process", "cold added vs subprocess"):
        table.add_column(column, justify="left" if column == "job" else "right")
    summary = {}
    for name, times in results.items():
        med = {k: statistics.median(v) for k, v in times.items()}
        inproc = med.get("in-process")
        added = {"cold_vs_subprocess": med["sandboxed"] - med["subprocess"]}
        if inproc is not None:
            added |= {"cold_vs_in_process": med["sandboxed"] - inproc, "warm_vs_in_process": med["warm"] - inproc}
        summary[name] = med | {f"added_{key}": value for key, value in added.items()}

        def share(key: str) -> str:
            if key not in added:
                return "—"
            base = inproc if key.endswith("in_process") else med["subprocess"]
            return f"{added[key]:+.3f} s ({added[key] / base:+.1%})"

        table.add_row(name, f"{inproc:.3f}" if inproc is not None else "—", f"{med['subprocess']:.3f}",
                      f"{med['sandboxed']:.3f}", f"{med['warm']:.3f}", share("cold_vs_in_process"),
                      share("warm_vs_in_process"), share("cold_vs_subprocess"))
    console.print(table)
    console.print(f"parent-side CPU while a sandboxed job runs (monitor, output pumps): median "
                  f"{statistics.median(PARENT_CPU):.1%} of one core")
    if args.json is not None:
        args.json.write_text(json.dumps({"medians": summary, "raw": results, "parent_cpu_share": PARENT_CPU,
                                         "load_average": os.getloadavg()}, indent=2) + "\n")
    subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main()
