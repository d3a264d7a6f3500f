"""Frames per second of exodf's inference on the device TensorFlow uses (issue 7, item 3; not a test).

Written to be run in one call where a GPU is lent (it also runs on a CPU, slowly). A control movie is
simulated (--frames x --size x --size, seed --seed), then each run below detects its events in this
process, after one small warm-up run:

- the default whole-volume pass fed --chunks frames at a time (more frames per call keep a GPU busy; the
  result does not depend on it, so every run's events must agree with the first one's),
- --tiling candidates at the smallest and the largest chunk,
- the default pass at the largest chunk in each --dtypes other than float32 (mixed precision: bfloat16,
  float16), to see whether it is faster there and still finds the same events.

One JSON object per run is printed as soon as it ends: seconds, frames/s, events, agreement (F1, <= 1.5 px,
<= 1 frame, one-to-one) with the first run, TensorFlow's peak device memory where it reports one. Give
it a timeout: each default run at 1000 x 300 x 300 takes ~5 min on the 2-core CPU.

    python3 benchmarks/device_fps.py --frames 300 --size 300 --chunks 2,8,32 --dtypes bfloat16,float16
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    import tensorflow as tf

    from exodf.bench import AGREEMENT_RULE
    from exodf.detect import DetectConfig, detect_events
    from exodf.evaluate import match_events
    from exodf.jobs import load_detector
    from exodf.predict import DEFAULT_TILE, InferenceConfig
    from exodf.simulate import preset, simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunks", default="2,8,32", help="frames fed at a time, comma-separated")
    ap.add_argument("--dtypes", default="bfloat16,float16", help="reduced precisions to try, comma-separated "
                    "(empty: none)")
    args = ap.parse_args()
    chunks = sorted({int(c) for c in args.chunks.split(",")})
    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU ({', '.join(g.name for g in gpus)})" if gpus else f"CPU ({os.cpu_count()} cores)"
    net = load_detector(None)
    movie = simulate(preset("control", n_frames=args.frames, height=args.size, width=args.size), seed=args.seed).movie
    detect_events(movie[:8, :64, :64], net, keep_labels=False)  # warm-up: first calls build the kernels
    runs = [("context", c, "float32") for c in chunks] + [
        ("candidates", c, "float32") for c in sorted({chunks[0], chunks[-1]})] + [
        ("context", chunks[-1], d) for d in args.dtypes.split(",") if d and d != "float32"]
    first = None
    for tiling, chunk, dtype in runs:
        if gpus:
            tf.config.experimental.reset_memory_stats("GPU:0")
        config = DetectConfig(inference=InferenceConfig(tiling=tiling, tile=(chunk,) + DEFAULT_TILE[1:],
                                                        dtype=dtype))  # type: ignore[arg-type]
        t0 = time.perf_counter()
        events = detect_events(movie, net, config, keep_labels=False).events
        seconds = time.perf_counter() - t0
        first = events if first is None else first
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 1e9 if gpus else None
        print(json.dumps({
            "device": device, "tiling": tiling, "chunk": chunk, "dtype": dtype, "frames": args.frames,
            "size": args.size,
            "seconds": round(seconds, 1), "frames_per_second": round(args.frames / seconds, 1),
            "events": len(events), "agreement_with_first": match_events(events, first, **AGREEMENT_RULE).f1,
            "peak_device_memory_gb": None if peak is None else round(peak, 2),
        }), flush=True)


if __name__ == "__main__":
    main()
