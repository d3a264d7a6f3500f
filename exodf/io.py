"""Movies and masks: files <-> numpy arrays (T, Y, X).

Readers memory-map the pixel data where the file layout allows it (uncompressed TIFF, contiguous
HDF5), so a 1000-frame movie costs no RAM until frames are used.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import atomic_path
from .errors import ExodfError
from .events import TABLE_SUFFIXES

__all__ = ["read_movie", "check_movie", "read_mask", "write_tiff", "write_probabilities", "movie_paths",
           "MOVIE_SUFFIXES",
           "movie_stem", "table_stem", "file_stem", "cell_name", "pairing_key"]

TIFF_SUFFIXES = (".tif", ".tiff")
MOVIE_SUFFIXES = TIFF_SUFFIXES + (".h5", ".hdf5", ".ome.tif", ".ome.tiff")
_TIME_LIKE = "TZIQ"  # axes that may carry time in a stack (ImageJ stacks often call frames "slices")


def movie_stem(path: str | os.PathLike[str]) -> str:
    """A movie's name without its suffix (``cell1.ome.tif`` -> ``cell1``; a folder keeps its name)."""
    name = Path(path).name
    for suf in sorted(MOVIE_SUFFIXES, key=len, reverse=True):  # .ome.tif before .tif
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(path).stem


def table_stem(path: str | os.PathLike[str]) -> str:
    """An event table's name without its suffixes: ``cell1.csv`` -> ``cell1``, and ExoJ's default export
    name ``cell1.tif_secretions.csv.csv`` -> ``cell1`` (table suffixes, ``_secretions``, the movie's suffix)."""
    base = re.sub(r"(\.(csv|txt|tsv|xls|xml))+$", "", Path(path).name, flags=re.IGNORECASE)
    base = re.sub(r"_secretions$", "", base, flags=re.IGNORECASE)
    for suf in sorted(MOVIE_SUFFIXES, key=len, reverse=True):
        if base.lower().endswith(suf):
            return base[: -len(suf)]
    return base


_ROLE = re.compile(r"(_|-|\.)(events|pred|predictions?|detections?|gt|ground_?truth|truth|mask|cell_mask)$",
                   re.IGNORECASE)


def file_stem(path: str | os.PathLike[str]) -> str:
    """A table's or movie's name without its suffix (ExoJ's ``cell1.tif_secretions.csv.csv``: ``cell1``)."""
    p = Path(path)
    if p.name.lower().endswith(MOVIE_SUFFIXES):
        return movie_stem(p)
    return table_stem(p) if p.suffix.lower() in TABLE_SUFFIXES else p.name


def cell_name(path: str | os.PathLike[str]) -> str:
    """The name of the movie or cell that a file stands for, as written (``Cell1_events.csv`` -> ``Cell1``,
    ``cell1_mask.tif`` -> ``cell1``): its :func:`file_stem` without a role suffix (_events, _gt, _mask...)."""
    return _ROLE.sub("", file_stem(path))


def pairing_key(path: str | os.PathLike[str]) -> str:
    """:func:`cell_name` in lower case: files are paired with their movie whatever the case of their names."""
    return cell_name(path).lower()


def read_movie(path: str | os.PathLike[str], channel: int | None = None, plane: int | None = None,
               check_finite: bool = True) -> np.ndarray:
    """Read a movie as a (T, Y, X) array.

    Parameters
    ----------
    path
        A multi-page TIFF, OME-TIFF or ImageJ hyperstack; a folder of one TIFF per frame (the number that
        varies between the names is the frame index); or the original ExoDeepFinder's ``.h5`` (dataset
        ``dataset``).
    channel
        Which channel (0-based) of a multi-channel or RGB file to use.
    plane
        Which z-plane (0-based) of a file with both z-planes and time points to use.
    check_finite
        Refuse a floating-point movie with NaN or infinite pixels (a pass over the data; see
        :func:`check_movie`); False for callers that only need the shape.
    """
    p = Path(path)
    if (channel or plane) and p.suffix.lower() in (".h5", ".hdf5"):  # 0 is its one channel
        raise ExodfError(f"{p}: --channel and --plane choose inside a TIFF; this file holds one channel of 2D+time "
                         "(channel and plane 0): drop them")
    if plane and p.is_dir():
        raise ExodfError(f"{p}: --plane chooses inside a TIFF; a folder of per-frame TIFFs holds one plane: drop it")
    if p.is_dir():
        return check_movie(_read_folder(p, channel), p, check_finite)
    if not p.is_file():
        raise ExodfError(f"{p}: movie not found; give a .tif/.tiff/.h5 file or a folder of per-frame TIFFs")
    suffix = p.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return check_movie(_read_h5(p), p, check_finite)
    if suffix in TIFF_SUFFIXES:
        return check_movie(_read_tiff(p, channel, plane), p, check_finite)
    raise ExodfError(f"{p}: unsupported movie format {p.suffix!r}; convert it to a TIFF stack (.tif) "
                     "or give the original's .h5")


def check_movie(movie: np.ndarray, label: str | os.PathLike[str] = "movie", finite: bool = True,
                block: int = 32) -> np.ndarray:
    """Refuse what no event can be detected in, with an :class:`ExodfError` that starts with ``label``.

    A movie must be a (T, Y, X) array of at least 2 frames with real numbers (not bool, not complex); with
    ``finite``, a floating-point movie must have no NaN or infinite pixels (e.g. the padding of a drift
    correction): they would turn whole frames' normalisation into NaN and lose their events silently.
    The finite check goes in blocks of frames; a memory-mapped movie's pages are handed back as it advances.
    """
    if not isinstance(movie, np.ndarray):
        raise ExodfError(f"{label}: expected a (T, Y, X) numpy array, got {type(movie).__name__}; read a file "
                         "with exodf.read_movie(path)")
    if movie.ndim != 3 or movie.shape[0] < 2 or movie.shape[1] < 1 or movie.shape[2] < 1:
        raise ExodfError(f"{label}: shape {movie.shape}; exodf needs a movie of at least 2 frames, (T, Y, X)")
    if movie.dtype.kind not in "uif":
        what = "yes/no" if movie.dtype.kind == "b" else "not real numbers"
        raise ExodfError(f"{label}: pixels of type {movie.dtype} ({what}); exodf needs intensities: "
                         "give the microscope's movie (integers or floats)")
    if not finite or movie.dtype.kind != "f":
        return movie
    pages = MappedPages(movie)
    too_big = float(np.finfo(np.float32).max) if movie.dtype.itemsize > 4 else np.inf  # computed in float32
    for t0 in range(0, movie.shape[0], block):
        blk = np.abs(np.asarray(movie[t0:t0 + block])).reshape(min(block, movie.shape[0] - t0), -1)
        ok = (blk < too_big).all(axis=1)  # (False for NaN too)
        if not ok.all():
            bad = t0 + int(np.argmin(ok))
            raise ExodfError(f"{label}: Slice {bad + 1} (frame {bad} counted from 0; maybe others too) holds NaN or "
                             "infinite pixels (or values beyond float32); exodf needs finite intensities: replace "
                             "them (Fiji: Process > Math > Remove NaNs..., or set them to the background) or "
                             "re-export the movie")
        pages.release_before(t0 + block)
    return movie


class MappedPages:
    """Hands back to the OS the pages of a memory-mapped movie that lie before a frame already read.

    Frames are read forward; pages of a file mapping stay in the process's resident memory until unmapped,
    so a long movie would otherwise end up resident as a whole. Released pages are only dropped from this
    process (the file is read-only; the page cache keeps them), so reading them again costs a page fault.
    """

    def __init__(self, movie: np.ndarray) -> None:
        mm = getattr(movie, "_mmap", None) if isinstance(movie, np.memmap) else None
        # read-only maps only: on a copy-on-write one ('c') DONTNEED would throw the caller's edits away, on
        # a writable one ('r+', 'w+') pages not yet written back
        read_only = isinstance(movie, np.memmap) and getattr(movie, "mode", None) in ("r", "readonly")
        self._mm = mm if mm is not None and read_only and movie.size and hasattr(mmap, "MADV_DONTNEED") else None
        self._movie = movie
        self._done = 0
        if self._mm is not None:
            self._base = np.frombuffer(self._mm, dtype=np.uint8).ctypes.data

    def release_before(self, frame: int) -> None:
        if self._mm is None or frame <= 0 or frame >= self._movie.shape[0]:
            return
        # bytes of the mapping that hold only frames before ``frame`` (the movie may be a strided view)
        end = self._movie[frame:].ctypes.data - self._base
        end -= end % mmap.PAGESIZE
        if end < self._done:  # a new pass from the start (the next y/x tile): release as it advances again
            self._done = 0
        if end > self._done:
            try:
                self._mm.madvise(mmap.MADV_DONTNEED, self._done, end - self._done)
            except (OSError, ValueError):  # not supported here: keep the pages, nothing else changes
                self._mm = None
                return
            self._done = end


def _read_tiff(p: Path, channel: int | None, plane: int | None) -> np.ndarray:
    import tifffile

    damage = _TiffDamage()
    logging.getLogger("tifffile").addHandler(damage)
    try:
        try:
            tif = tifffile.TiffFile(p)
        except Exception as e:  # tifffile raises several types for damaged files
            raise ExodfError(f"{p}: cannot be read as TIFF ({e}); re-save it from Fiji as TIFF") from None
        try:
            series = tif.series[0]
            axes, shape = series.axes.upper(), tuple(series.shape)
        except Exception as e:  # no image in the file, or a damaged header
            tif.close()
            raise ExodfError(f"{p}: holds no readable image ({type(e).__name__}: {e}); re-save it from Fiji as "
                             "TIFF") from None
    finally:
        logging.getLogger("tifffile").removeHandler(damage)
    if damage.pages:  # a page list that ends in the void: the file was cut short
        tif.close()
        raise ExodfError(f"{p}: damaged or truncated ({damage.pages[0]}); copy the file again or re-save the movie")
    with tif:
        if (tif.imagej_metadata or {}).get("Info") == PROBABILITY_INFO:
            raise ExodfError(f"{p}: this is an exodf probability map (`exodf detect --probabilities`), not a movie; "
                             "give the movie it was computed from")
        if _appended_pages(tif):  # pages written one by one (tifffile append=True): one series per page
            try:
                data = tif.asarray(key=slice(None), series=None)
            except Exception as e:
                raise ExodfError(f"{p}: pixel data is damaged or truncated ({e}); copy the file again or re-save "
                                 "the movie") from None
            return _to_tyx(data, "TYX", data.shape, p, channel, plane)
        if len(tif.series) > 1 and not _previews_only(tif.series):  # several positions, or pages that differ
            raise ExodfError(_several_series(p, tif.series))
        # ImageJ files over 4 GB hold one IFD only: count the series' images, and check its data fits the file
        images = int(np.prod([n for n, a in zip(shape, axes) if a not in "YXS"], dtype=np.int64))
        expected = (tif.imagej_metadata or {}).get("images")
        if isinstance(expected, int) and expected > images:
            raise ExodfError(f"{p}: truncated: its ImageJ header announces {expected} images, the file holds "
                             f"{images}; copy the file again or re-save the movie")
        if series.dataoffset is not None and series.dataoffset + series.nbytes > p.stat().st_size:
            raise ExodfError(f"{p}: truncated: its pixel data would end at byte {series.dataoffset + series.nbytes}, "
                             f"the file has {p.stat().st_size}; copy the file again or re-save the movie")
        try:
            try:
                data = (tifffile.memmap(p, series=0, mode="r") if series.dataoffset is not None
                        else series.asarray())
            except (ValueError, OSError):  # not memory-mappable (compressed, or not contiguous)
                data = series.asarray()
        except Exception as e:
            raise ExodfError(f"{p}: pixel data is damaged or truncated ({e}); copy the file again or re-save "
                             "the movie") from None
    return _to_tyx(np.asarray(data) if not isinstance(data, np.memmap) else data, axes, shape, p, channel, plane)


def _several_series(p: Path, series: Sequence[Any]) -> str:
    """Why a TIFF of several image series is not read as one movie (exodf would see only the first)."""
    first = series[0]
    k = next((i for i, s in enumerate(series) if s.shape != first.shape or s.dtype != first.dtype), None)
    if all(len(s.shape) == 2 for s in series) and k is not None:
        return (f"{p}: its pages are not one stack: page {k + 1} is {series[k].shape[0]}x{series[k].shape[1]} px of "
                f"{series[k].dtype}, page 1 {first.shape[0]}x{first.shape[1]} px of {first.dtype}; remove the odd "
                "page or re-save the movie from Fiji as one stack")
    listed = "; ".join(f"{i}: {s.axes} {tuple(s.shape)}" for i, s in enumerate(series[:6]))
    return (f"{p}: holds {len(series)} image series ({listed}{'; ...' if len(series) > 6 else ''}); exodf reads "
            "one movie per file: save each series (e.g. each stage position) as its own TIFF (Fiji: File > Import > "
            "Bio-Formats with 'Open all series', then save each)")


def _previews_only(series: Sequence[Any]) -> bool:
    """Whether the series after the first are previews of it (reduced-resolution pages, or 2D thumbnails
    smaller than its frames), which the movie (the first series) is read without."""
    frame = tuple(series[0].shape[-2:])
    return len(series[0].shape) > 2 and all(
        s.keyframe.is_reduced or (len(s.shape) == 2 and (s.shape[0] < frame[0] or s.shape[1] < frame[1]))
        for s in series[1:])


def _appended_pages(tif: "object") -> bool:
    """Whether a TIFF holds a movie as several 2D series of one shape and type (pages appended one at a
    time, which Fiji reads as a stack) rather than one series."""
    series = tif.series  # type: ignore[attr-defined]
    if len(series) < 2 or getattr(tif, "is_imagej", False) or getattr(tif, "is_ome", False):
        return False
    first = series[0]
    return all(len(s.shape) == 2 and s.shape == first.shape and s.dtype == first.dtype for s in series)


def quiet_tifffile() -> None:
    """Keep tifffile's log messages off the console: exodf turns the ones that matter into one-line errors."""
    logger = logging.getLogger("tifffile")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


class _TiffDamage(logging.Handler):
    """Collects tifffile's complaints about page offsets beyond the end of the file (a truncated file)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.pages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "invalid page offset" in msg:
            self.pages.append(msg.split("> ", 1)[-1])


def _pick(data: np.ndarray, axes: str, axis: str, index: int | None, p: Path, option: str,
          what: str) -> tuple[np.ndarray, str]:
    k = axes.index(axis)
    n = data.shape[k]
    if axis == "S" and not any(a in _TIME_LIKE + "C" for a in axes):
        raise ExodfError(f"{p}: this is a single colour image (shape {data.shape}), not a movie; exodf needs a time "
                         "series of frames (a TIFF stack or a folder of per-frame TIFFs). If its "
                         f"{data.shape[k]} planes are frames, the writer stored them as the colours of one image: save "
                         "them again one page per frame (tifffile: imwrite(path, frames, "
                         "photometric='minisblack'))")
    if axis == "C" and not any(a in _TIME_LIKE for a in axes):  # nothing left to be time: mislabelled axes
        raise ExodfError(f"{p}: the file has {n} channels and no time axis (axes {axes}, shape {data.shape}); if "
                         "these are the movie's time points, its axes are mislabelled: Fiji: Image > Hyperstacks > "
                         "Re-order Hyperstacks (channels <-> frames), then save it again")
    if index is None:
        raise ExodfError(f"{p}: the movie has {n} {what} (axis {axis}); exodf needs one channel of 2D+time: "
                         f"choose one with {option} N (0..{n - 1})")
    if not 0 <= index < n:
        raise ExodfError(f"{p}: {option} {index} is out of range; the movie has {n} {what} (0..{n - 1})")
    return data[(slice(None),) * k + (index,)], axes.replace(axis, "")  # a view: a memory map stays one


def _to_tyx(data: np.ndarray, axes: str, shape: tuple[int, ...], p: Path, channel: int | None,
            plane: int | None) -> np.ndarray:
    """Reduce a TIFF series with tifffile's axis letters to (T, Y, X), refusing ambiguity."""
    data = data.reshape(shape)
    had_channels = any(a in axes and data.shape[axes.index(a)] > 1 for a in "SC")
    # a channel axis (C, or S: RGB samples) must be picked unless it has size 1
    for ax, what in (("S", "colour samples (RGB)"), ("C", "channels")):
        if ax in axes:
            if data.shape[axes.index(ax)] > 1:
                data, axes = _pick(data, axes, ax, channel, p, "--channel", what)
            else:
                data, axes = data[(slice(None),) * axes.index(ax) + (0,)], axes.replace(ax, "")
    if channel and not had_channels:
        if "Q" in axes:  # tifffile's letter for an axis the file does not name
            raise ExodfError(f"{p}: the file does not name its axes (shape {data.shape}), so --channel cannot find "
                             "its channels; save it from Fiji as a hyperstack (Image > Hyperstacks > Stack to "
                             "Hyperstack)")
        raise ExodfError(f"{p}: --channel {channel} given, but the movie has a single channel (0); drop --channel")
    # drop other singleton axes
    keep = [i for i, a in enumerate(axes) if data.shape[i] > 1 or a in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    time_axes = [a for a in axes if a in _TIME_LIKE]
    if "T" in time_axes and "Z" in time_axes:
        data, axes = _pick(data, axes, "Z", plane, p, "--plane", "z-planes")
        time_axes = ["T"]
    elif plane:
        raise ExodfError(f"{p}: --plane {plane} given, but the movie has no z-planes besides time (its one plane "
                         "is 0); drop --plane")
    if len(time_axes) > 1 or any(a not in _TIME_LIKE + "YX" for a in axes):
        raise ExodfError(f"{p}: axes {axes!r} (shape {data.shape}) are not time+Y+X; save the movie as a "
                         "single-channel time series (Fiji: Image > Hyperstacks > Re-order / Stack to Hyperstack)")
    if not time_axes:
        raise ExodfError(f"{p}: this is a single 2D image (shape {data.shape}), not a movie; exodf needs a "
                         "time series of frames (a TIFF stack or a folder of per-frame TIFFs)")
    if axes[-2:] != "YX":
        raise ExodfError(f"{p}: axes {axes!r}: expected Y and X last; re-save the movie from Fiji as TIFF")
    return data


def _read_h5(p: Path) -> np.ndarray:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise ExodfError(f"{p}: cannot be opened as HDF5 ({e}); give the original's movie .h5") from None
    with f:
        if "dataset" not in f:
            raise ExodfError(f"{p}: no dataset named 'dataset' (found: {', '.join(f.keys()) or 'none'}); "
                             "the original's .h5 movies store frames x H x W under 'dataset'")
        d = f["dataset"]
        if not isinstance(d, h5py.Dataset):
            raise ExodfError(f"{p}: 'dataset' is an HDF5 group, not an array; the original's .h5 movies store "
                             "frames x H x W as the dataset 'dataset'")
        if d.ndim != 3:
            raise ExodfError(f"{p}: 'dataset' has shape {d.shape}; expected frames x height x width")
        offset = d.id.get_offset()
        if offset is not None and d.chunks is None and d.compression is None and d.size > 0:
            shape, dtype = d.shape, d.dtype
        else:
            return d[()]
    return np.memmap(p, mode="r", dtype=dtype, shape=shape, offset=offset)


_DIGITS = re.compile(r"(\d+)")


def _name_pattern(f: Path) -> tuple[str, list[str]]:
    """A file name with its numbers replaced by '#' (.tif/.tiff in any case alike), and the numbers."""
    parts = _DIGITS.split(f.name[: -len(f.suffix)] + ".tif")
    return "#".join(parts[0::2]), parts[1::2]


def _frame_numbers(folder: Path, files: list[Path]) -> list[tuple[int, Path]]:
    """(frame number, file) of per-frame TIFFs named alike: the frame is the one number that varies between
    the names (frame_0001.tif, cell2_t001_c1.tif, Micro-Manager's img_channel000_position000_time000000001_z000.tif;
    with a single file, its last number)."""
    named = [(f, *_name_pattern(f)) for f in files]
    patterns = Counter(pat for _, pat, _ in named)
    main = patterns.most_common(1)[0][0]
    if "#" not in main:
        raise ExodfError(f"{folder}: {named[0][0].name} has no frame number in its name; name frames like "
                         "frame_0001.tif")
    if len(patterns) > 1:
        odd = [f.name for f, pat, _ in named if pat != main]
        raise ExodfError(f"{folder}: mixed file name patterns; these do not follow {main.replace('#', 'N')!r}: "
                         f"{', '.join(odd[:10])}; move them out of the folder")
    numbers = [nums for _, _, nums in named]
    varying = [k for k in range(len(numbers[0])) if len({int(n[k]) for n in numbers}) > 1]
    if len(varying) > 1:
        ex = ", ".join(f.name for f in files[:3])
        raise ExodfError(f"{folder}: {len(varying)} numbers vary between the file names ({ex}, ...), so which one "
                         "is the frame is unclear (several channels, positions or z-planes in one folder?); put "
                         "each series of frames in its own folder")
    k = varying[0] if varying else len(numbers[0]) - 1
    return [(int(nums[k]), f) for f, _, nums in named]


def frame_files(folder: Path) -> list[Path]:
    """The per-frame TIFFs of a folder movie (its other files are not frames), sorted by name."""
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES)


def _read_folder(folder: Path, channel: int | None = None) -> np.ndarray:
    import tifffile

    files = frame_files(folder)
    if not files:
        raise ExodfError(f"{folder}: the folder holds no .tif/.tiff files; give a folder of per-frame TIFFs")
    n_images, noun = _images_in_frame_file(files[0])
    if n_images:
        raise ExodfError(f"{folder}: a folder of movies ({files[0].name} holds {n_images} {noun}), not of "
                         "one image per frame; give one movie file here (per-frame files of more than 4 "
                         "channels need ImageJ metadata that says so: channels=N)")
    parsed = sorted(_frame_numbers(folder, files), key=lambda t: t[0])
    idx = [i for i, _ in parsed]
    dup = sorted({i for i in idx if idx.count(i) > 1})
    if dup:
        names = [f.name for i, f in parsed if i in dup]
        raise ExodfError(f"{folder}: frame numbers repeat in {', '.join(names[:10])}; keep one file per frame")
    gaps = [(a, b) for (a, _), (b, _) in zip(parsed, parsed[1:]) if b != a + 1]
    if gaps:
        byidx = {i: f.name for i, f in parsed}
        desc = ", ".join(f"{byidx[a]} -> {byidx[b]}" for a, b in gaps[:10])
        raise ExodfError(f"{folder}: frames are missing between {desc}; add the missing frames or renumber")
    def imread(f: Path) -> np.ndarray:
        try:
            return tifffile.imread(f)
        except Exception as e:  # tifffile raises several types for damaged files
            raise ExodfError(f"{f}: this frame cannot be read as TIFF ({type(e).__name__}: {e}); re-save it or "
                             "move it out of the folder") from None

    def image2d(f: Path) -> np.ndarray:
        img = imread(f)
        while img.ndim > 2 and img.shape[0] == 1:  # saved as (1, Y, X)
            img = img[0]
        if img.ndim == 3:  # colour samples (Y, X, 3|4: screen grabs, RGB sequences) or channels (C, Y, X)
            rgb = img.shape[-1] in (3, 4) and img.shape[0] > 4
            n = img.shape[-1] if rgb else img.shape[0]
            if channel is None:
                raise ExodfError(f"{f}: the frames have {n} {'colour samples (RGB)' if rgb else 'channels'} (shape "
                                 f"{img.shape}); choose one with --channel N (0..{n - 1}), or save the frames as "
                                 "one grey channel (Fiji: Image > Type > 8-bit or 16-bit)")
            if not 0 <= channel < n:
                raise ExodfError(f"{f}: --channel {channel} is out of range; the frames have {n} (0..{n - 1})")
            img = img[..., channel] if rgb else img[channel]
        elif channel:
            raise ExodfError(f"{f}: --channel {channel} given, but the frames have a single channel (0); drop "
                             "--channel")
        if img.ndim != 2:
            raise ExodfError(f"{f}: each per-frame TIFF must be one 2D image, this one has shape {img.shape}")
        return img

    first = image2d(parsed[0][1])
    out = np.empty((len(parsed),) + first.shape, dtype=first.dtype)
    out[0] = first
    for k, (_, f) in enumerate(parsed[1:], start=1):
        img = image2d(f)
        if img.shape != first.shape:
            raise ExodfError(f"{f}: frame shape {img.shape} differs from {parsed[0][1].name}'s {first.shape}")
        if img.dtype != first.dtype:  # casting would wrap (uint16 460 -> uint8 204) or round silently
            raise ExodfError(f"{f}: pixel type {img.dtype} differs from {parsed[0][1].name}'s {first.dtype}; save "
                             "every frame with the same bit depth")
        out[k] = img
    return out


def movie_paths(inputs: Sequence[str | os.PathLike[str]],
                skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Expand the command line's MOVIE arguments: files stay, a folder of movies gives its movies.

    A folder whose TIFFs all follow one numbered pattern is a per-frame movie, not a folder of movies. In a
    folder of movies, files that cannot be movies are passed over — single images (a cell mask), exodf's
    probability maps, HDF5 files without the original's ``dataset`` (network weights) — and listed with
    the reason in ``skipped`` when given. Subfolders are not searched.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            subs = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in MOVIE_SUFFIXES)
            tiffs = [f for f in subs if f.suffix.lower() in TIFF_SUFFIXES]
            pattern = {f: _name_pattern(f)[0] for f in tiffs}
            main, n_main = Counter(pattern.values()).most_common(1)[0] if tiffs else ("", 0)
            # mostly 2D images numbered alike: a per-frame movie (reading it names any odd file out)
            if n_main > 1 and "#" in main and 2 * n_main > len(subs) and \
                    _looks_2d(next(f for f in tiffs if pattern[f] == main)):
                out.append(p)
                continue
            found, passed = [], []
            for f in subs:
                why = _not_a_movie(f)
                if why is None:
                    found.append(f)
                else:
                    passed.append((f, why))
            if skipped is not None:  # said too: what a user may have meant as a movie
                skipped.extend(passed + _passed_over(p))
            if found:
                out.extend(found)
            elif subs:
                series = sorted(pat for pat, n in Counter(pattern.values()).items() if n > 1 and "#" in pat)
                if len(series) > 1 and all(why.startswith("a single image") for _, why in passed):
                    raise ExodfError(f"{p}: {len(series)} series of per-frame images in one folder ("
                                     f"{', '.join(s.replace('#', 'N') for s in series[:4])}; channels or "
                                     "positions?): put each series in its own folder and give that folder")
                raise ExodfError(f"{p}: the folder holds no movie: its {len(subs)} image file(s) are "
                                 f"{'; '.join(sorted({why for _, why in passed}))}")
            else:
                sub = any(f.is_dir() for f in p.iterdir())
                raise ExodfError(f"{p}: the folder holds no movie (.tif/.tiff/.h5)"
                                 + ("; its subfolders are not searched: give them one by one" if sub else ""))
        elif p.exists():
            out.append(p)
        else:
            raise ExodfError(f"{p}: movie not found; check the path")
    return out


# files beside movies that are plainly not movies: passed over without a word (exodf's own outputs among them)
_NOT_MOVIES = (".csv", ".txt", ".tsv", ".xls", ".xlsx", ".xml", ".json", ".png", ".jpg", ".jpeg", ".pdf", ".zip",
               ".md", ".yaml", ".yml", ".log", ".ijm", ".py", ".roi", ".keras", ".npz", ".npy", "")


def _passed_over(folder: Path) -> list[tuple[Path, str]]:
    """What a folder of movies holds besides movie files that a user may have meant as a movie: subfolders
    (not searched) and files of other formats (a microscope's own, a renamed copy)."""
    out = []
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):
            continue
        if f.is_dir():
            try:  # (an output folder of tables is not what a user meant as a movie)
                images = any(g.suffix.lower() in MOVIE_SUFFIXES for g in f.iterdir())
            except OSError:
                images = True
            if images:
                out.append((f, "a subfolder, not searched: give it as its own argument (a folder of per-frame "
                               "TIFFs is one movie)"))
        elif f.suffix.lower() not in MOVIE_SUFFIXES + _NOT_MOVIES:
            out.append((f, "not a movie file exodf reads (.tif/.tiff/.h5): convert it to TIFF (e.g. in Fiji)"))
    return out


def _not_a_movie(f: Path) -> str | None:
    """Why a file in a folder of movies cannot be a movie, or None (unreadable files stay: reading them
    gives their own error)."""
    if f.suffix.lower() in (".h5", ".hdf5"):
        try:
            import h5py

            with h5py.File(f, "r") as h:
                return None if "dataset" in h else "an HDF5 file without the original's 'dataset' (weights?)"
        except Exception:
            return None
    import tifffile

    try:
        with tifffile.TiffFile(f) as t:
            if (t.imagej_metadata or {}).get("Info") == PROBABILITY_INFO:
                return "an exodf probability map"
            series = t.series[0]
            # (planar SYX may be 3-4 frames, pages appended one by one a movie: read_movie decides); a (1, Y, X)
            # stack (axes QYX, ImageJ's one-slice save) is one image too
            axes, shape = series.axes, series.shape
            other = [d for i, (d, a) in enumerate(zip(shape, axes)) if a not in "YX" and (a, i) != ("S", len(axes) - 1)]
            if int(np.prod(other)) == 1 and len(t.series) == 1 and not _announces_a_movie(t):
                return "a single image, not a movie (a mask?)"
    except Exception:
        return None
    return None


def _announces_a_movie(t: Any) -> bool:
    """Whether ImageJ metadata announces several images: a movie, damaged when tifffile shows one page (it
    falls back to the first page of a file cut short), which reading then reports."""
    return int((t.imagej_metadata or {}).get("images", 1) or 1) > 1


def _images_in_frame_file(f: Path) -> tuple[int, str]:
    """(count, "frames" or "images") of a file in a folder of per-frame TIFFs when it is itself a movie: ImageJ
    says frames, or it holds more than 4 images that ImageJ does not call channels or z-slices (up to 4 are read
    as channels); (0, "") for a frame."""
    import tifffile

    try:
        with tifffile.TiffFile(f) as t:
            ij = t.imagej_metadata or {}
            if ij:  # (a plain stack says only how many images it holds)
                n, noun = int(ij.get("frames", 1) or 1), "frames"
                if n == 1 and int(ij.get("images", 1) or 1) > 4 and not {"channels", "slices"} & set(ij):
                    n, noun = int(ij["images"]), "images"
            else:
                shape, axes = t.series[0].shape, t.series[0].axes
                n = int(np.prod([d for d, a in zip(shape, axes) if a not in "YXS"] or [1]))
                n, noun = (n, "frames" if "T" in axes else "images") if n > 4 else (1, "")
    except Exception:  # an unreadable frame gives its own error when it is read
        return 0, ""
    return (n, noun) if n > 1 else (0, "")


def _looks_2d(f: Path) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(f) as t:
            if _announces_a_movie(t):
                return False
            return len(t.series[0].shape) == 2 or int(np.prod(t.series[0].shape[:-2])) == 1
    except Exception:
        return False


def read_mask(path: str | os.PathLike[str], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a binary cell mask (any non-zero pixel is inside) as a 2D bool array."""
    import tifffile

    p = Path(path)
    if not p.is_file():
        raise ExodfError(f"{p}: mask not found; give a binary TIFF (non-zero inside the cell)")
    try:
        m = np.squeeze(tifffile.imread(p))
    except Exception as e:
        raise ExodfError(f"{p}: cannot be read as TIFF ({e}); save the mask from Fiji as TIFF") from None
    if m.ndim != 2:
        raise ExodfError(f"{p}: the mask has shape {m.shape}; it must be one 2D image")
    if shape is not None and m.shape != tuple(shape):
        raise ExodfError(f"{p}: the mask is {m.shape[1]}x{m.shape[0]} px but the movie is {shape[1]}x{shape[0]}"
                         " px; draw the mask on this movie")
    if not m.any():
        raise ExodfError(f"{p}: the mask is empty (no pixel is non-zero), so no event could count; draw the cell "
                         "in it, or leave the mask out")
    return m != 0


#: ImageJ "Info" of exodf's probability maps (Image > Show Info), by which a folder of movies passes them over
PROBABILITY_INFO = "exodf probability map: channels background, bright spot, exocytosis"


def write_tiff(path: str | os.PathLike[str], data: np.ndarray, axes: str = "TYX",
               resolution_um: float | None = None, info: str | None = None,
               frame_interval_s: float | None = None) -> Path:
    """Write an ImageJ-compatible TIFF atomically (``axes`` in ImageJ order, e.g. TYX, TCYX); ``resolution_um``
    and ``frame_interval_s`` calibrate it (Fiji's Image > Properties)."""
    import tifffile

    _path_first("write_tiff(path, data)", path)
    p = Path(path)
    if np.ndim(data) != len(axes):
        raise ValueError(f"write_tiff: {len(axes)} axes {axes!r} for an array of shape {np.shape(data)}; give axes "
                         "such as 'YX' for an image, 'TYX' for a movie")
    md, kw = imagej_calibration(resolution_um, frame_interval_s)
    md = {"axes": axes, **md} if info is None else {"axes": axes, "Info": info, **md}
    with atomic_path(p) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, metadata=md, **kw)
    return p


def imagej_calibration(resolution_um: float | None = None, frame_interval_s: float | None = None
                       ) -> tuple[dict[str, object], dict[str, Any]]:
    """ImageJ metadata and ``tifffile.imwrite`` keywords that calibrate a TIFF: µm per pixel, s per frame."""
    md: dict[str, object] = {}
    kw: dict[str, Any] = {}
    if resolution_um:
        kw["resolution"] = (1.0 / resolution_um, 1.0 / resolution_um)
        md["unit"] = "um"
    if frame_interval_s:
        md["finterval"] = float(frame_interval_s)
    return md, kw


def _path_first(call: str, path: object) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{call}: the path comes first, got {type(path).__name__}")


def write_probabilities(path: str | os.PathLike[str], probabilities: np.ndarray) -> Path:
    """Write (T, Y, X, C) class probabilities as an ImageJ hyperstack (T, C, Y, X) float32 TIFF."""
    _path_first("write_probabilities(path, probabilities)", path)
    arr = np.ascontiguousarray(np.moveaxis(np.asarray(probabilities, dtype=np.float32), -1, 1))
    return write_tiff(path, arr, axes="TCYX", info=PROBABILITY_INFO)


def create_probability_map(path: str | os.PathLike[str], n_frames: int, height: int, width: int,
                           n_classes: int = 3) -> np.memmap:
    """Create an ImageJ hyperstack TIFF (T, C, Y, X) float32 at ``path`` and return it memory-mapped for writing.

    Callers write to a temporary path (see :func:`exodf.atomic.atomic_path`) and move it into place when done.
    The file's disk space is reserved before it is mapped (:func:`exodf.atomic.reserve_space`): on a full disk
    this raises ``OSError(ENOSPC)`` naming ``path``, where writing into the map would kill the process (SIGBUS).
    """
    import tifffile

    from .atomic import reserve_space

    shape, dtype = (n_frames, n_classes, height, width), np.dtype(np.float32)
    # tifffile.memmap(path, shape=..., dtype=...) in two steps, to reserve the space between them: the empty
    # (sparse) file, its data aligned for mapping, then the map
    written = tifffile.imwrite(path, data=None, shape=shape, dtype=dtype, imagej=True, returnoffset=True,
                               align=tifffile.TIFF.ALLOCATIONGRANULARITY,
                               metadata={"axes": "TCYX", "Info": PROBABILITY_INFO})
    if written is None:  # (not with these options: one contiguous float32 series)
        raise ValueError(f"{path}: tifffile made no memory-mappable probability map")
    reserve_space(path)
    return np.memmap(path, dtype=dtype, mode="r+", offset=written[0], shape=shape, order="C")
