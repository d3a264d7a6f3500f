"""Training benchmarks of issue 5 (not a test; ~30 min each on the 2-core CPU). Prints JSON figures.

    # from scratch on simulated control movies, scored on held-out seeds against the published model and
    # the conventional baselines (ExoJ-like, ADAE-like)
    nice -n 19 python3 benchmarks/train_benchmark.py scratch --minutes 30 --work /tmp/exodf-train-scratch

    # fine-tune the published model on a preset where it is weak; held-out F1 there and on control
    nice -n 19 python3 benchmarks/train_benchmark.py finetune --preset control-low --minutes 30
    nice -n 19 python3 benchmarks/train_benchmark.py finetune --preset cd63 --minutes 30

Training movies use seeds 0.. (the last one is the validation movie), test movies seeds 1000..; every movie is
simulated with the chosen preset at --frames x --size x --size. Training stops at the end of the epoch that
passes --minutes (the curriculum and the learning rate are options; the defaults are sized for a CPU).
Scores use the paper's rule with the first and last 25 frames excluded (as `exodf bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _stages(text: str) -> Any:
    """'patch:batch:shift:epochs:steps,...' -> stages."""
    from exodf.train import Stage

    return tuple(Stage(*(int(v) for v in part.split(":"))) for part in text.split(","))


def _movies(preset_name: str, seeds: range, frames: int, size: int) -> list[Any]:
    from exodf.simulate import preset, simulate

    return [simulate(preset(preset_name, n_frames=frames, height=size, width=size), seed=s) for s in seeds]


def _prepare(sims: list[Any]) -> list[Any]:
    from exodf.spots import spot_labels
    from exodf.training_files import prepare_movie

    return [prepare_movie(s.movie, s.truth, spot_labels(s.movie), name=f"seed{s.seed}") for s in sims]


def _score(name: str, detect: Any, sims: list[Any]) -> dict[str, Any]:
    from exodf.evaluate import score_events, summarize

    t0 = time.perf_counter()
    ms = [score_events(detect(s.movie), s.truth, s.movie.shape[0], exclude_edges=25) for s in sims]
    summ = summarize(ms)
    row = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summ.as_dict().items()}
    row["seconds_per_movie"] = round((time.perf_counter() - t0) / max(1, len(sims)), 1)
    print(f"  {name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


def _network_detector(net: Any) -> Any:
    from exodf.detect import detect_events

    return lambda movie: detect_events(movie, net).events


def _train(init: str, train_sims: list[Any], val_sims: list[Any], args: argparse.Namespace, out: Path) -> Any:
    import keras

    from exodf.model import build_unet, load_network
    from exodf.pretrained import published_weights
    from exodf.train import TrainConfig, train_network

    keras.utils.set_random_seed(args.seed)
    net = build_unet() if init == "scratch" else load_network(published_weights())
    config = TrainConfig(stages=_stages(args.stages), learning_rate=args.lr, val_batches=args.val_batches,
                         seed=args.seed)
    resume = (out / "checkpoint" / "state.json").is_file()

    def on_epoch(row: dict[str, Any]) -> None:
        print(f"  step {row['step']} patch {row['patch']} loss {row['loss']:.4f} val_loss {row.get('val_loss')}"
              f" val_f1_exo {row.get('val_f1_exocytosis')} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)

    res = train_network(net, _prepare(train_sims), _prepare(val_sims), config, out, resume=resume,
                        max_seconds=60 * args.minutes, on_epoch=on_epoch)
    return net, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("scratch", "finetune"))
    ap.add_argument("--preset", default=None, help="training/test preset (scratch: control; finetune: control-low)")
    ap.add_argument("--train", type=int, default=5, help="training movies (+1 validation movie)")
    ap.add_argument("--test", type=int, default=3, help="held-out test movies")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    ap.add_argument("--stages", default=None, help="patch:batch:shift:epochs:steps,... (default per mode)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--val-batches", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baselines", action="store_true", help="also score the ExoJ-like and ADAE-like baselines")
    ap.add_argument("--work", type=Path, default=None, help="output folder (kept; rerunning resumes)")
    args = ap.parse_args()
    if args.stages is None:  # CPU-sized curricula: ~0.5 s per 8-px step of 16, ~2 s per 16-px step of 8
        args.stages = ("8:16:4:20:25,16:8:8:20:25,32:2:16:20:25" if args.mode == "scratch"
                       else "16:8:8:20:25,32:2:16:20:25")
    name = args.preset or ("control" if args.mode == "scratch" else "control-low")
    work = args.work or Path(f"/tmp/exodf-train-{args.mode}-{name}")
    t_start = time.perf_counter()
    train_sims = _movies(name, range(0, args.train + 1), args.frames, args.size)
    test_sims = _movies(name, range(1000, 1000 + args.test), args.frames, args.size)
    print(f"{args.mode} on {name}: training {args.train}+1 movies, testing {args.test}", file=sys.stderr)
    net, res = _train("scratch" if args.mode == "scratch" else "published", train_sims[:-1], train_sims[-1:],
                      args, work)
    figures: dict[str, Any] = {"mode": args.mode, "preset": name, "frames": args.frames, "size": args.size,
                               "stages": args.stages, "lr": args.lr, "train_steps": res.step,
                               "train_minutes": round((time.perf_counter() - t_start) / 60, 1),
                               "finished_curriculum": res.finished, "weights": str(res.weights)}
    from exodf.jobs import load_detector

    published = load_detector(None)
    figures[f"trained@{name}"] = _score("trained", _network_detector(net), test_sims)
    figures[f"published@{name}"] = _score("published", _network_detector(published), test_sims)
    if args.mode == "finetune" and name != "control":
        control = _movies("control", range(1000, 1000 + args.test), args.frames, args.size)
        figures["trained@control"] = _score("trained on control", _network_detector(net), control)
        figures["published@control"] = _score("published on control", _network_detector(published), control)
    if args.baselines or args.mode == "scratch":
        from exodf.baselines import detect_adae_like, detect_exoj_like

        figures[f"exoj_like@{name}"] = _score("exoj-like", detect_exoj_like, test_sims)
        figures[f"adae_like@{name}"] = _score("adae-like", detect_adae_like, test_sims)
    figures["total_minutes"] = round((time.perf_counter() - t_start) / 60, 1)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
