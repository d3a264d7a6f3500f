"""exodf: ExoDeepFinder exocytosis detection as a library, a command line and a bioimage.io model.

The library API is typed and works on numpy arrays; only :mod:`exodf.io` and :mod:`exodf.events`
touch files. TensorFlow is imported only when a network is built or loaded.
"""

from .candidates import CandidateConfig
from .cluster import ClusterConfig, labels_to_events, points_to_events
from .detect import DetectConfig, Detection, Segmentation, detect_events, events_from_segmentation, segment_movie
from .errors import ExodfError
from .evaluate import exclude_events, match_events, score_events
from .events import EventTable, read_events, write_events
from .io import check_movie, read_mask, read_movie, write_probabilities, write_tiff
from .measure import MeasureConfig, measure_events
from .model import build_unet, load_network
from .normalize import normalize_frames
from .predict import InferenceConfig, predict_probabilities
from .pretrained import published_weights
from .simulate import PRESETS, SimParams, preset, simulate  # (exodf.simulate is the function; the module's
                                                                # names are here, or `from exodf.simulate import`)

__version__ = "0.1.0"

_TRAINING = {"Stage": "train", "TrainConfig": "train", "train_network": "train", "prepare_movie": "training_files"}


def __getattr__(name: str) -> object:  # training names load their modules (scipy.spatial) when first used
    if name in _TRAINING:
        import importlib

        return getattr(importlib.import_module(f".{_TRAINING[name]}", __name__), name)
    raise AttributeError(f"module 'exodf' has no attribute {name!r}")

__all__ = [
    "CandidateConfig", "ClusterConfig", "DetectConfig", "Detection", "EventTable", "ExodfError", "InferenceConfig",
    "MeasureConfig", "PRESETS", "Segmentation", "SimParams", "Stage", "TrainConfig",
    "build_unet", "check_movie", "detect_events", "events_from_segmentation", "exclude_events", "labels_to_events",
    "load_network", "match_events", "measure_events", "normalize_frames", "points_to_events", "predict_probabilities",
    "prepare_movie", "preset", "published_weights", "read_events", "read_mask", "read_movie", "score_events",
    "segment_movie", "simulate", "train_network", "write_events", "write_probabilities", "write_tiff",
]
