"""A fast path (`--tiling candidates`, `--dtype`) against the default whole-volume pass on every simulator
preset (issue 7; not a test).

For each preset a movie (--frames x --size x --size, seed --seed) is simulated, the default and the fast path
detect its events in this process, and the JSON printed per preset gives each one's seconds, the events
found, the agreement of the fast path with the default (F1, <= 1.5 px, <= 1 frame, one-to-one, as
`exodf bench`) and the default's events the fast path missed, with their size in voxels. ``--cache DIR``
keeps the default's events and seconds per movie there and reuses them (the default pass is the slow part);
``--halo T,PX`` tries another candidate halo; ``--tiling context --dtype bfloat16`` measures reduced
precision alone.

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
    from pathlib import Path

    from exodf.bench import AGREEMENT_RULE
    from exodf.candidates import CandidateConfig
    from exodf.detect import DetectConfig, detect_events
    from exodf.evaluate import match_events
    from exodf.events import read_events, write_events
    from exodf.jobs import load_detector
    from exodf.predict import InferenceConfig
    from exodf.simulate import PRESETS, preset, simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--halo", default=",".join(map(str, CandidateConfig().halo)))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--tiling", default="candidates", choices=("candidates", "context"))
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    args = ap.parse_args()
    halo = tuple(int(v) for v in args.halo.split(","))
    fast_config = InferenceConfig(tiling=args.tiling, candidates=CandidateConfig(halo=halo),  # type: ignore[arg-type]
                                  dtype=args.dtype)
    net = load_detector(None)
    for name in args.presets.split(","):
        movie = simulate(preset(name, n_frames=args.frames, height=args.size, width=args.size), seed=args.seed).movie
        stem = f"{name}_{args.frames}x{args.size}x{args.size}_seed{args.seed}"
        cached = args.cache / f"{stem}_context.csv" if args.cache else None
        if cached is not None and cached.exists():
            full, t_full = read_events(cached), json.loads(cached.with_suffix(".json").read_text())["seconds"]
        else:
            t0 = time.perf_counter()
            full = detect_events(movie, net, DetectConfig(), keep_labels=False).events
            t_full = round(time.perf_counter() - t0, 1)
            if cached is not None:
                args.cache.mkdir(parents=True, exist_ok=True)
                write_events(full, cached)
                cached.with_suffix(".json").write_text(json.dumps({"seconds": t_full}))
        t0 = time.perf_counter()
        fast = detect_events(movie, net, DetectConfig(inference=fast_config), keep_labels=False).events
        t_fast = round(time.perf_counter() - t0, 1)
        m = match_events(fast, full, **AGREEMENT_RULE)
        missed = full.select(~m.gt_matched)
        print(json.dumps({
            "preset": name, "frames": args.frames, "size": args.size, "seed": args.seed, "halo": list(halo),
            "tiling": args.tiling, "dtype": args.dtype,
            "context_seconds": t_full, "fast_seconds": t_fast, "context_events": len(full),
            "fast_events": len(fast), "agreement_f1": m.f1,
            "missed": [{"x": round(float(x), 1), "y": round(float(y), 1), "frame": int(f), "size": int(s)}
                       for x, y, f, s in zip(missed.x, missed.y, missed.frame, missed.columns["size"])],
        }), flush=True)


if __name__ == "__main__":
    main()
