"""Time ``exodf detect`` on a simulated movie and print seconds and peak RSS (not a test).

    python3 benchmarks/detect_benchmark.py                       # 1000 x 300 x 300 (the issue's size)
    python3 benchmarks/detect_benchmark.py --frames 200 --size 200 --tiling original

The movie is simulated (control preset), written as a TIFF, and ``exodf detect`` runs on it as a user
would, in a child process whose peak resident memory is read from the kernel (ru_maxrss of children).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiling", default="context")
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep the movie and results in")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import tifffile

    from exodf.evaluate import score_events
    from exodf.events import read_events
    from exodf.simulate import preset, simulate

    work = Path(args.keep or tempfile.mkdtemp(prefix="exodf-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    movie_path = work / f"sim_{args.frames}x{args.size}x{args.size}.tif"
    if not movie_path.exists():
        sim = simulate(preset("control", n_frames=args.frames, height=args.size, width=args.size), seed=args.seed)
        tifffile.imwrite(movie_path, sim.movie, imagej=True, metadata={"axes": "TYX"})
        from exodf.events import write_events

        write_events(sim.truth, work / "ground_truth.csv")
    out = work / f"events_{args.tiling}.csv"
    cmd = [sys.executable, "-m", "exodf", "detect", str(movie_path), "-o", str(out), "--tiling", args.tiling, "-q"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"exodf detect failed:\n{res.stderr}")
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # kB -> GB
    events = read_events(out)
    gt = read_events(work / "ground_truth.csv")
    m = score_events(events, gt, args.frames, exclude_edges=25)
    figures = {"frames": args.frames, "size": args.size, "tiling": args.tiling, "seconds": round(seconds, 1),
               "peak_rss_gb": round(peak_gb, 2), "events": len(events), "cpus": os.cpu_count(),
               "f1_vs_truth_excl25": m.f1}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"exodf detect {args.frames}x{args.size}x{args.size} ({args.tiling}): {seconds:.1f} s, "
              f"peak RSS {peak_gb:.2f} GB, {len(events)} events, F1 vs truth (excl. 25 frames) {m.f1}, "
              f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
