"""Throughput over many inputs: ``posezoo run --jobs 1`` vs ``--jobs 2``, the process pool vs Ray Data,
and the memory of every worker over a long run.

Makes its inputs in a work folder (kept between runs, so a second run skips the making):

* ``images/``: the shared test photos (../shared/testdata/images, else the bundled sample) letterboxed
  to 640x480, repeated to ``--images`` files (300);
* ``videos/``: ``--videos`` copies (8) of one ``--frames``-frame (300) 640x480 pan-and-zoom clip;
* ``many/``: ``--memory-images`` (10,000) synthetic 640x480 frames of a pan and zoom over the sample.

Then, interleaved and repeated ``--repeats`` times (the machine may be shared: compare medians):

1. ``posezoo run MODEL -i images --json out.jsonl --jobs 1`` / ``--jobs 2``, and the same over
   ``-v videos``: items/s (images, or video frames) over the whole command, start-up included;
2. ``posezoo.drivers.batch.batch(..., ray=None)`` (the local process pool) against ``ray="local"`` in one Ray
   started by this script: seconds from the engine's start (Ray already running) to the last file;
3. once: ``posezoo run -i many --jobs 2 --json`` with every worker's resident memory sampled each
   second: its growth from the first tenth of the run to the end.

    python benchmarks/throughput.py [--model blazepose-full] [--images 300] [--videos 8] [--frames 300]
        [--memory-images 10000] [--repeats 3] [--workdir DIR] [--skip-ray] [--skip-memory]

Weights come from the normal cache (``posezoo fetch MODEL`` first, or pass ``--mirror DIR``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED", REPO.parent / "shared"))
SIZE = (640, 480)


# ------------------------------------------------------------------------------------ inputs


def letterbox(image: np.ndarray, size=SIZE) -> np.ndarray:
    w, h = size
    scale = min(w / image.shape[1], h / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - resized.shape[0]) // 2, (w - resized.shape[1]) // 2
    out[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return out


def photos() -> list[np.ndarray]:
    from posezoo.io.sources import sample_image_path

    folder = SHARED / "testdata" / "images"
    paths = sorted(folder.glob("*.jpg")) if folder.is_dir() else [sample_image_path()]
    return [letterbox(cv2.imread(str(p))) for p in paths]


def make_inputs(work: Path, n_images: int, n_videos: int, frames: int, n_many: int) -> dict[str, Path]:
    from posezoo.drivers.bench import pan_zoom_frames, write_clip
    from posezoo.io.sources import sample_image_path

    dirs = {"images": work / f"images-{n_images}", "videos": work / f"videos-{n_videos}x{frames}", "many": work / f"many-{n_many}"}
    if not dirs["images"].is_dir():
        tmp = dirs["images"].with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        pics = photos()
        for i in range(n_images):
            cv2.imwrite(str(tmp / f"img{i:05d}.jpg"), pics[i % len(pics)])
        tmp.rename(dirs["images"])
    if not dirs["videos"].is_dir():
        tmp = dirs["videos"].with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        clip = write_clip(tmp / "clip00.mp4", cv2.imread(str(sample_image_path())), frames, SIZE)
        for i in range(1, n_videos):
            shutil.copyfile(clip, tmp / f"clip{i:02d}.mp4")
        tmp.rename(dirs["videos"])
    if n_many and not dirs["many"].is_dir():
        tmp = dirs["many"].with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        sample = cv2.imread(str(sample_image_path()))
        print(f"making {n_many} synthetic images ...", file=sys.stderr)
        for i, frame in enumerate(pan_zoom_frames(sample, n_many, SIZE, period=997)):
            cv2.imwrite(str(tmp / f"f{i:06d}.jpg"), frame)
        tmp.rename(dirs["many"])
    return dirs


# ------------------------------------------------------------------------------------ CPU time

HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / HZ


def _tree(root: int) -> dict[int, float]:
    """CPU seconds of ``root`` and every process below it."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                procs[int(entry.name)] = st
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: procs[pid][1] for pid in tree if pid in procs}


class CpuMeter:
    """CPU seconds used by a process tree while the block runs (sampled every 0.1 s from /proc; a
    process's last 0.1 s may be missed). ``root``: a pid (default: this process, minus its CPU before)."""

    def __init__(self, root: int | None = None):
        self.root = root or os.getpid()
        self.seen: dict[int, float] = {}
        self.before = _tree(self.root) if Path("/proc").is_dir() else {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.update()
            self._stop.wait(0.1)

    def update(self) -> None:
        if Path("/proc").is_dir():
            for pid, cpu in _tree(self.root).items():
                self.seen[pid] = max(self.seen.get(pid, 0.0), cpu)

    def __enter__(self) -> CpuMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.update()
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(cpu - self.before.get(pid, 0.0) for pid, cpu in self.seen.items())


# ------------------------------------------------------------------------------------ runs


def posezoo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "posezoo", *args]


def time_run(model: str, flag: str, folder: Path, jobs: int, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all its processes) of one ``posezoo run`` over ``folder``, JSON
    Lines to a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = posezoo_cmd("run", model, flag, str(folder), "--json", str(Path(tmp) / "out.jsonl"), "--jobs", str(jobs), *extra)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        with CpuMeter(proc.pid) as meter:
            _, err = proc.communicate()
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return seconds, meter.seconds


def time_batch(model: str, folder: Path, ray: str | None, workers: int, extra: dict) -> tuple[float, float]:
    """(seconds from the engine's start to the last file, CPU seconds of this process and everything
    below it meanwhile, Ray's processes included) of one ``posezoo.drivers.batch.batch``."""
    from posezoo.drivers.batch import batch

    with tempfile.TemporaryDirectory() as tmp, CpuMeter() as meter:
        result = batch(model, [str(folder)], str(Path(tmp) / "out"), ray=ray, workers=workers, progress=False, **extra)
    if result.failures:
        sys.exit(f"batch failed: {result.failures[:3]}")
    return result.run_seconds, meter.seconds


def count(folder: Path) -> int:
    """Items of a folder: images, or frames of its videos."""
    total = 0
    for p in sorted(folder.iterdir()):
        if p.suffix == ".mp4":
            cap = cv2.VideoCapture(str(p))
            total += int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            cap.release()
        else:
            total += 1
    return total


# ------------------------------------------------------------------------------------ memory


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _role(pid: int, parent: int) -> str:
    if pid == parent:
        return "parent"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = ""
    if "resource_tracker" in cmdline:
        return "resource tracker"
    st = _stat(pid)
    # the fork server is the parent's child; workers are forked from it (and keep its command line)
    return "fork server" if "forkserver" in cmdline and st is not None and st[0] == parent else "worker"


def memory_run(model: str, folder: Path, jobs: int, extra: list[str]) -> dict:
    """Run ``posezoo run -i folder --jobs N --json`` sampling each process's RSS every second."""
    if not Path("/proc").is_dir():
        return {"skipped": "needs /proc (Linux)"}
    samples: dict[int, list[tuple[float, float]]] = {}
    roles: dict[int, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = posezoo_cmd("run", model, "-i", str(folder), "--json", str(Path(tmp) / "out.jsonl"), "--jobs", str(jobs), *extra)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
        reader.start()
        while proc.poll() is None:
            now = time.perf_counter() - start
            for pid in _tree(proc.pid):
                rss = _rss_mb(pid)
                if rss is not None:
                    samples.setdefault(pid, []).append((now, rss))
                    roles.setdefault(pid, _role(pid, proc.pid))
            time.sleep(1.0)
        seconds = time.perf_counter() - start
        reader.join()
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{''.join(err)}")
    rows = []
    for pid, series in samples.items():
        if len(series) < 10:
            continue  # the spawn helper, or too short to tell
        t = np.array([s[0] for s in series])
        rss = np.array([s[1] for s in series])
        # from the end of the first tenth of the run (model loaded, warm) to the end
        warm = t >= t[0] + 0.1 * (t[-1] - t[0])
        first = float(np.median(rss[warm][: max(3, warm.sum() // 10)]))
        last = float(np.median(rss[warm][-max(3, warm.sum() // 10) :]))
        slope = float(np.polyfit(t[warm], rss[warm], 1)[0]) * 60 if warm.sum() > 2 else 0.0
        rows.append({"pid": pid, "role": roles[pid], "start_mb": first, "end_mb": last,
                     "peak_mb": float(rss.max()), "growth_mb": last - first, "mb_per_min": slope, "samples": len(series)})  # fmt: skip
    return {"seconds": seconds, "processes": rows}


# ------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="blazepose-full")
    ap.add_argument("--variant", default=None)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--memory-images", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values to compare (first = baseline)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "posezoo-throughput")
    ap.add_argument("--mirror", default=None)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true", help="only the memory run")
    args = ap.parse_args()

    from posezoo.inference.runtime import physical_cores
    from posezoo.zoo.resolve import get_zoo

    zoo = get_zoo()
    zoo.resolve(args.model, args.variant).files(mirror=args.mirror)  # fetched + converted once, up front
    extra = ["--variant", args.variant] if args.variant else []
    dirs = make_inputs(args.workdir, args.images, args.videos, args.frames, 0 if args.skip_memory else args.memory_images)
    n_items = {"images": count(dirs["images"]), "videos": count(dirs["videos"])}
    cores = physical_cores()
    print(f"# posezoo throughput: {args.model}, {cores} physical core(s), {os.cpu_count()} logical, "
          f"load average {os.getloadavg()[0]:.1f} at start, repeats {args.repeats}\n")  # fmt: skip

    ray_init = None
    if args.skip_throughput:
        args.repeats = 0
        args.skip_ray = True
    if not args.skip_ray:
        import ray

        from posezoo.inference.runtime import physical_cores as pc

        start = time.perf_counter()
        ray.init(num_cpus=pc(), include_dashboard=False, log_to_driver=False)
        ray_init = time.perf_counter() - start

    runs: dict[tuple, list[float]] = {}
    cpus: dict[tuple, list[float]] = {}
    batch_extra = {"variant": args.variant} if args.variant else {}
    workers = max(args.jobs)
    for r in range(args.repeats):
        for kind, flag in (("images", "-i"), ("videos", "-v")):
            for jobs in args.jobs:  # interleaved: every configuration once per repeat
                wall, cpu = time_run(args.model, flag, dirs[kind], jobs, extra)
                runs.setdefault(("run", kind, jobs), []).append(wall)
                cpus.setdefault(("run", kind, jobs), []).append(cpu)
            engines = [None] if args.skip_ray else [None, "local"]
            for ray_addr in engines:
                engine = "ray" if ray_addr else "pool"
                after, cpu = time_batch(args.model, dirs[kind], ray_addr, workers, batch_extra)
                runs.setdefault(("batch", kind, engine), []).append(after)
                cpus.setdefault(("batch", kind, engine), []).append(cpu)
        print(f"repeat {r + 1}/{args.repeats} done (load average {os.getloadavg()[0]:.1f})", file=sys.stderr)
    if not args.skip_ray:
        import ray

        ray.shutdown()

    med = statistics.median
    if not args.skip_throughput:
        print("## posezoo run --jobs N (whole command, start-up included)\n")
        print("CPU s: CPU time of all the run's processes; machine share = CPU s / wall s (what the run got of the "
              "machine; 2.0 = both cores of a 2-core machine).\n")  # fmt: skip
        print(f"| input | items | --jobs | wall s (median) | min | items/s | speed-up vs --jobs {args.jobs[0]} | CPU s | CPU ms/item | machine share |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for kind in ("images", "videos"):
            base = med(runs[("run", kind, args.jobs[0])])
            for jobs in args.jobs:
                t, c = runs[("run", kind, jobs)], cpus[("run", kind, jobs)]
                print(f"| {kind} | {n_items[kind]} | {jobs} | {med(t):.2f} | {min(t):.2f} | {n_items[kind] / med(t):.1f} | "
                      f"{base / med(t):.2f}x | {med(c):.1f} | {1e3 * med(c) / n_items[kind]:.1f} | "
                      f"{med([ci / ti for ci, ti in zip(c, t)]):.2f} |")  # fmt: skip
        if not args.skip_ray:
            print(f"\n## posezoo batch, {workers} workers: process pool vs Ray Data (seconds from the engine's start to "
                  f"the last file; Ray's own start before that: {ray_init:.1f} s)\n")  # fmt: skip
            print("| input | items | pool s (median) | Ray s (median) | Ray / pool | pool CPU s | Ray CPU s | pool items/s | Ray items/s |")
            print("|---|---|---|---|---|---|---|---|---|")
            for kind in ("images", "videos"):
                pool, rayt = med(runs[("batch", kind, "pool")]), med(runs[("batch", kind, "ray")])
                print(f"| {kind} | {n_items[kind]} | {pool:.2f} | {rayt:.2f} | {rayt / pool:.2f}x | "
                      f"{med(cpus[('batch', kind, 'pool')]):.1f} | {med(cpus[('batch', kind, 'ray')]):.1f} | "
                      f"{n_items[kind] / pool:.1f} | {n_items[kind] / rayt:.1f} |")  # fmt: skip
        print("\nAll wall times (s):", {" ".join(map(str, k)): [round(x, 2) for x in v] for k, v in runs.items()})
        print("All CPU times (s):", {" ".join(map(str, k)): [round(x, 2) for x in v] for k, v in cpus.items()})

    if not args.skip_memory:
        mem = memory_run(args.model, dirs["many"], workers, extra)
        print(f"\n## Memory: posezoo run over {args.memory_images} images, --jobs {workers} ({mem['seconds']:.0f} s, "
              f"{args.memory_images / mem['seconds']:.1f} images/s)\n")  # fmt: skip
        print("The parent process is a worker too (one thread), besides forwarding results.\n")
        print("| process | RSS after the first tenth (MB) | at the end (MB) | peak (MB) | growth (MB) | trend (MB/min) |")
        print("|---|---|---|---|---|---|")
        for row in sorted(mem["processes"], key=lambda r: (r["role"] != "parent", r["pid"])):
            print(f"| {row['role']} {row['pid']} | {row['start_mb']:.0f} | {row['end_mb']:.0f} | {row['peak_mb']:.0f} | "
                  f"{row['growth_mb']:+.1f} | {row['mb_per_min']:+.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
