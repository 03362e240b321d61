"""Ray Data's own start: how long an actor pool takes to get going with a callable class that does
nothing, next to which ``posezoo batch --ray`` is measured (benchmarks/throughput.py).

Runs ``--runs`` small datasets (30 one-row blocks, ``map_batches`` with a no-op callable class on an
actor pool of ``--actors``) in one local Ray and prints, per run, when the first actor was constructed
and when the first call came, in seconds from the dataset's start. The first run after ``ray.init``
also starts Ray Data's own helper actors.

    python benchmarks/ray_floor.py [--runs 4] [--actors 2]
"""

from __future__ import annotations

import argparse
import sys
import time


class Nop:
    """A callable class that only records when it was built and when it was called."""

    def __init__(self):
        self.born = time.time()

    def __call__(self, batch):
        import pyarrow as pa

        return pa.table({"born": [self.born] * batch.num_rows, "called": [time.time()] * batch.num_rows})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args(argv)

    import ray
    import ray.data

    from posezoo.inference.runtime import physical_cores

    ray.init(num_cpus=physical_cores(), include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        print("| run | first actor built, s | first call, s | all 30 calls done, s |")
        print("|---|---|---|---|")
        for run in range(1, args.runs + 1):
            start = time.time()
            ds = ray.data.from_items([{"i": i} for i in range(30)], override_num_blocks=30).map_batches(
                Nop, batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=args.actors), num_cpus=1
            )
            rows = ds.take_all()
            done = time.time() - start
            born = min(r["born"] for r in rows) - start
            called = min(r["called"] for r in rows) - start
            print(f"| {run} | {born:.2f} | {called:.2f} | {done:.2f} |", flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
