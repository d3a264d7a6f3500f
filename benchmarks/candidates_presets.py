"""`--tiling candidates` against the default whole-volume pass on every simulator preset (issue 7; not a test).

For each preset a movie (--frames x --size x --size, seed --seed) is simulated, both tilings detect its events
in this process, and the JSON printed per preset gives each one's seconds, the events found, the agreement of
candidates with the default (F1, <= 1.5 px, <= 1 frame, one-to-one, as `exodf bench`) and the events of the
default that candidates missed, with their size in voxels.

    nice -n 19 python3 benchmarks/candidates_presets.py --frames 300 --size 300 > candidates_presets.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from exodf.bench import AGREEMENT_RULE
    from exodf.detect import DetectConfig, detect_events
    from exodf.evaluate import match_events
    from exodf.jobs import load_detector
    from exodf.predict import InferenceConfig
    from exodf.simulate import PRESETS, preset, simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--presets", default=",".join(PRESETS))
    args = ap.parse_args()
    net = load_detector(None)
    for name in args.presets.split(","):
        movie = simulate(preset(name, n_frames=args.frames, height=args.size, width=args.size), seed=args.seed).movie
        runs = {}
        for tiling in ("context", "candidates"):
            t0 = time.perf_counter()
            det = detect_events(movie, net, DetectConfig(inference=InferenceConfig(tiling=tiling)), keep_labels=False)
            runs[tiling] = (det.events, round(time.perf_counter() - t0, 1))
        (full, t_full), (fast, t_fast) = runs["context"], runs["candidates"]
        m = match_events(fast, full, **AGREEMENT_RULE)
        missed = full.select(~m.gt_matched)
        print(json.dumps({
            "preset": name, "frames": args.frames, "size": args.size, "seed": args.seed,
            "context_seconds": t_full, "candidates_seconds": t_fast, "context_events": len(full),
            "candidates_events": len(fast), "agreement_f1": m.f1,
            "missed": [{"x": round(float(x), 1), "y": round(float(y), 1), "frame": int(f), "size": int(s)}
                       for x, y, f, s in zip(missed.x, missed.y, missed.frame, missed.columns["size"])],
        }), flush=True)


if __name__ == "__main__":
    main()
