"""Movie readers and writers against real ImageJ/OME/HDF5 files, and every bad-input error."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from exodf.errors import ExodfError
from exodf.io import cell_name, movie_paths, pairing_key, read_mask, read_movie, write_probabilities, write_tiff

RNG = np.random.default_rng(0)
MOVIE = RNG.integers(100, 4000, size=(6, 12, 16), dtype=np.uint16)


def test_multipage_tiff_is_memory_mapped(tmp_path: Path) -> None:
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, MOVIE)
    m = read_movie(p)
    assert isinstance(m, np.memmap)
    np.testing.assert_array_equal(m, MOVIE)


def test_imagej_stack_saved_as_slices(tmp_path: Path) -> None:
    p = tmp_path / "slices.tif"  # ImageJ stacks without hyperstack metadata call frames "slices" (Z)
    tifffile.imwrite(p, MOVIE, imagej=True, metadata={"axes": "ZYX"})
    np.testing.assert_array_equal(read_movie(p), MOVIE)


def test_imagej_hyperstack_with_channels(tmp_path: Path) -> None:
    p = tmp_path / "hs.tif"
    data = np.stack([MOVIE, MOVIE + 1], axis=1)  # T C Y X
    tifffile.imwrite(p, data, imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(ExodfError, match=r"2 channels \(axis C\).*--channel") as e:
        read_movie(p)
    assert str(p) in str(e.value)
    np.testing.assert_array_equal(read_movie(p, channel=1), MOVIE + 1)
    with pytest.raises(ExodfError, match="out of range"):
        read_movie(p, channel=2)


def test_probability_map_is_not_a_movie(tmp_path: Path) -> None:
    # a Fiji user may hand the batch macro exodf's own output: say what it is, not "choose --channel"
    p = write_probabilities(tmp_path / "probs.tif", np.full((6, 8, 8, 3), 1 / 3, np.float32))
    for channel in (None, 2):
        with pytest.raises(ExodfError, match="exodf probability map.*give the movie it was computed from") as e:
            read_movie(p, channel=channel)
        assert str(p) in str(e.value)


def test_hyperstack_with_z_and_time(tmp_path: Path) -> None:
    p = tmp_path / "tz.tif"
    data = np.stack([MOVIE, MOVIE + 5, MOVIE + 9], axis=1)  # T Z Y X
    tifffile.imwrite(p, data, imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(ExodfError, match=r"z-planes \(axis Z\).*--plane"):
        read_movie(p)
    np.testing.assert_array_equal(read_movie(p, plane=2), MOVIE + 9)


def test_ome_tiff(tmp_path: Path) -> None:
    p = tmp_path / "m.ome.tif"
    tifffile.imwrite(p, MOVIE[:, None, None], metadata={"axes": "TCZYX"}, ome=True)
    np.testing.assert_array_equal(read_movie(p), MOVIE)


def test_rgb_and_single_image_refused(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, RNG.integers(0, 255, (5, 8, 8, 3), dtype=np.uint8), photometric="rgb")
    with pytest.raises(ExodfError, match="RGB.*--channel"):
        read_movie(rgb)
    assert read_movie(rgb, channel=0).shape == (5, 8, 8)
    single = tmp_path / "one.tif"
    tifffile.imwrite(single, MOVIE[0])
    with pytest.raises(ExodfError, match="single 2D image"):
        read_movie(single)


def test_original_h5(tmp_path: Path) -> None:
    p = tmp_path / "movie.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("dataset", data=MOVIE)
    m = read_movie(p)
    assert isinstance(m, np.memmap)
    np.testing.assert_array_equal(m, MOVIE)
    c = tmp_path / "chunked.h5"
    with h5py.File(c, "w") as f:
        f.create_dataset("dataset", data=MOVIE, chunks=(1, 12, 16), compression="gzip")
    np.testing.assert_array_equal(read_movie(c), MOVIE)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("frames", data=MOVIE)
    with pytest.raises(ExodfError, match="no dataset named 'dataset'.*frames"):
        read_movie(bad)
    group = tmp_path / "group.h5"
    with h5py.File(group, "w") as f:
        f.create_group("dataset").create_dataset("frames", data=MOVIE)
    with pytest.raises(ExodfError, match="group.h5: 'dataset' is an HDF5 group, not an array"):
        read_movie(group)


def _frames(folder: Path, names: list[str]) -> None:
    folder.mkdir()
    for k, n in enumerate(names):
        tifffile.imwrite(folder / n, MOVIE[k % len(MOVIE)])


def test_folder_of_frames_sorted_by_last_number(tmp_path: Path) -> None:
    d = tmp_path / "frames"
    names = [f"cell2_t{i}.TIF" for i in (1, 2, 3, 10, 4, 5, 6, 7, 8, 9)]  # numeric, not lexical, order
    d.mkdir()
    for n in names:
        idx = int(n.split("_t")[1].split(".")[0])
        tifffile.imwrite(d / n, np.full((4, 4), idx, np.uint16))
    m = read_movie(d)
    assert m.shape == (10, 4, 4)
    np.testing.assert_array_equal(m[:, 0, 0], np.arange(1, 11))
    assert movie_paths([d]) == [d]  # one movie, not ten


def test_the_number_that_varies_is_the_frame(tmp_path: Path) -> None:
    """Micro-Manager's names carry channel, position, time and z: only time varies in a time series."""
    for folder, name in (("mm", "img_channel000_position000_time{:09d}_z000.tif"), ("tc", "cell2_t{:03d}_c1.tif")):
        d = tmp_path / folder
        d.mkdir()
        for i in (3, 1, 0, 2, 10, 4, 5, 6, 7, 8, 9):
            tifffile.imwrite(d / name.format(i), np.full((4, 4), i, np.uint16))
        assert movie_paths([d]) == [d]
        np.testing.assert_array_equal(read_movie(d)[:, 0, 0], np.arange(11))
    both = tmp_path / "both"  # time and channel vary: which is the frame?
    both.mkdir()
    for t in range(3):
        for c in (1, 2):
            tifffile.imwrite(both / f"cell_t{t:03d}_c{c}.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(ExodfError, match="2 numbers vary between the file names .*put each series of frames in "
                                         "its own folder"):
        read_movie(movie_paths([both])[0])


def test_a_mask_among_the_frames_is_named(tmp_path: Path) -> None:
    d = tmp_path / "frames"
    _frames(d, [f"frame_{i:04d}.tif" for i in range(5)])
    tifffile.imwrite(d / "cell_mask.tif", np.ones((4, 4), np.uint8))
    assert movie_paths([d]) == [d]  # a movie of frames, not a folder of single images
    with pytest.raises(ExodfError, match="mixed file name patterns; these do not follow 'frame_N.tif': "
                                         "cell_mask.tif; move them out"):
        read_movie(d)


def test_folder_gap_and_mixed_patterns_refused(tmp_path: Path) -> None:
    d = tmp_path / "gap"
    _frames(d, ["f_000.tif", "f_001.tiff", "f_003.tif"])
    with pytest.raises(ExodfError, match="missing between f_001.tiff -> f_003.tif"):
        read_movie(d)
    m = tmp_path / "mixed"
    _frames(m, ["f_000.tif", "f_001.tif", "f_002.tif", "other7.tif"])
    with pytest.raises(ExodfError, match="mixed file name patterns.*other7.tif"):
        read_movie(m)


def test_folder_of_movies(tmp_path: Path) -> None:
    d = tmp_path / "movies"
    d.mkdir()
    for n in ("a.tif", "b.tif"):
        tifffile.imwrite(d / n, MOVIE)
    assert movie_paths([d]) == [d / "a.tif", d / "b.tif"]
    with pytest.raises(ExodfError, match="not found"):
        movie_paths([tmp_path / "none.tif"])
    # read as one movie (measure, compare, train take one): refused, not taken as per-frame files
    with pytest.raises(ExodfError, match=r"movies: a folder of movies \(a.tif holds \d+ images\), not of one "
                       "image per frame; give one movie file"):
        read_movie(d)
    c = tmp_path / "cells"
    c.mkdir()
    for n in ("cell1.tif", "cell2.tif"):
        write_tiff(c / n, MOVIE)  # ImageJ hyperstacks (frames=)
    with pytest.raises(ExodfError, match=r"cell1.tif holds \d+ frames"):
        read_movie(c, channel=0)
    f = tmp_path / "channels"
    f.mkdir()
    for n in ("t1.tif", "t2.tif"):  # per-frame files with 3 channels each: still frames, --channel picks one
        tifffile.imwrite(f / n, MOVIE[:3], imagej=True, metadata={"axes": "CYX"})
    assert read_movie(f, channel=1).shape == (2,) + MOVIE.shape[1:]
    z = tmp_path / "zstacks"
    z.mkdir()
    for n in ("t1.tif", "t2.tif"):  # per-frame z-stacks of 6 slices: frames too, not movies (--channel picks)
        tifffile.imwrite(z / n, MOVIE[:6], imagej=True, metadata={"axes": "ZYX"})
    assert read_movie(z, channel=2).shape == (2,) + MOVIE.shape[1:]


def test_unreadable_and_unknown(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(ExodfError, match="cannot be read as TIFF"):
        read_movie(junk)
    with pytest.raises(ExodfError, match="unsupported movie format"):
        p = tmp_path / "m.avi"
        p.write_bytes(b"x")
        read_movie(p)
    with pytest.raises(ExodfError, match="movie not found"):
        read_movie(tmp_path / "missing.tif")


def test_mask(tmp_path: Path) -> None:
    p = tmp_path / "mask.tif"
    m = np.zeros((12, 16), np.uint8)
    m[2:5, 3:9] = 255
    tifffile.imwrite(p, m)
    assert read_mask(p, (12, 16)).sum() == 18
    with pytest.raises(ExodfError, match="draw the mask on this movie"):
        read_mask(p, (10, 10))


def test_probabilities_hyperstack(tmp_path: Path) -> None:
    probs = RNG.random((4, 8, 12, 3)).astype(np.float32)
    p = write_probabilities(tmp_path / "p.tif", probs)
    with tifffile.TiffFile(p) as t:
        assert t.is_imagej and t.series[0].axes == "TCYX"
        np.testing.assert_array_equal(t.asarray(), np.moveaxis(probs, -1, 1))


def test_probability_map_is_reserved_before_it_is_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory-mapped probability map takes its disk space when it is made: on a full disk, writing into the
    sparse file's holes killed exodf detect with SIGBUS ("Bus error", status 135) and left its .part file."""
    import errno
    import os

    from exodf.atomic import atomic_path
    from exodf.io import PROBABILITY_INFO, create_probability_map

    reserved: list[int] = []
    real = getattr(os, "posix_fallocate", None)

    def fallocate(fd: int, offset: int, length: int) -> None:
        reserved.append(os.fstat(fd).st_size)
        if real is not None:
            real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", fallocate, raising=False)
    m = create_probability_map(tmp_path / "p.tif", 4, 8, 12)
    assert reserved == [(tmp_path / "p.tif").stat().st_size] and m.shape == (4, 3, 8, 12) and m.dtype == np.float32
    probs = RNG.random((4, 3, 8, 12)).astype(np.float32)
    m[:] = probs
    m.flush()
    del m
    with tifffile.TiffFile(tmp_path / "p.tif") as t:  # what tifffile.memmap made, the same
        assert t.is_imagej and t.series[0].axes == "TCYX" and t.imagej_metadata["Info"] == PROBABILITY_INFO
        np.testing.assert_array_equal(t.asarray(), probs)

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    target = tmp_path / "out" / "probabilities.tif"
    with pytest.raises(OSError) as e:
        with atomic_path(target) as tmp:
            create_probability_map(tmp, 4, 8, 12)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)  # the output, not its .part file
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p.tif"]  # nothing left: no .part file, no folder


def test_non_finite_pixels_are_refused_naming_the_frame(tmp_path) -> None:
    import tifffile

    from exodf.errors import ExodfError
    from exodf.io import read_movie

    movie = np.ones((40, 16, 16), np.float32)
    movie[35, 2:5, 2:5] = np.nan  # a drift correction's padding
    tifffile.imwrite(tmp_path / "nan.tif", movie, imagej=True, metadata={"axes": "TYX"})
    with pytest.raises(ExodfError, match=r"nan\.tif: Slice 36 \(frame 35 counted from 0; maybe others too\) "
                       "holds NaN or infinite"):
        read_movie(tmp_path / "nan.tif")
    movie[35] = 1
    movie[3, 0, 0] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", movie, imagej=True, metadata={"axes": "TYX"})
    with pytest.raises(ExodfError, match=r"Slice 4 \(frame 3 counted from 0"):
        read_movie(tmp_path / "inf.tif")
    movie[3, 0, 0] = 0
    tifffile.imwrite(tmp_path / "ok.tif", movie, imagej=True, metadata={"axes": "TYX"})
    assert read_movie(tmp_path / "ok.tif").shape == (40, 16, 16)


def test_truncated_and_damaged_files_say_so(tmp_path) -> None:
    import tifffile

    from exodf.errors import ExodfError
    from exodf.io import read_movie

    movie = np.arange(20 * 32 * 32, dtype=np.uint16).reshape(20, 32, 32)
    tifffile.imwrite(tmp_path / "whole.tif", movie, imagej=True, metadata={"axes": "TYX"})
    raw = (tmp_path / "whole.tif").read_bytes()
    for name, cut in (("half.tif", len(raw) // 2), ("head.tif", 200)):
        (tmp_path / name).write_bytes(raw[:cut])
        with pytest.raises(ExodfError, match=rf"{name}: .*(truncated|damaged).*copy the file again"):
            read_movie(tmp_path / name)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        tifffile.imwrite(frames / f"frame_{i:03d}.tif", movie[i])
    (frames / "frame_004.tif").write_bytes(b"")
    with pytest.raises(ExodfError, match=r"frame_004\.tif: this frame cannot be read as TIFF"):
        read_movie(frames)


def test_plane_and_channel_options_that_choose_nothing_are_refused(tmp_path) -> None:
    import tifffile

    from exodf.errors import ExodfError
    from exodf.io import read_movie

    tifffile.imwrite(tmp_path / "tyx.tif", np.zeros((5, 8, 8), np.uint16), imagej=True, metadata={"axes": "TYX"})
    with pytest.raises(ExodfError, match="--plane 1 given, but the movie has no z-planes"):
        read_movie(tmp_path / "tyx.tif", plane=1)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        tifffile.imwrite(frames / f"f{i}.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(ExodfError, match="--channel 1 given, but the frames have a single channel"):
        read_movie(frames, channel=1)
    with pytest.raises(ExodfError, match="--plane chooses inside a TIFF; a folder of per-frame TIFFs holds one"):
        read_movie(frames, plane=1)
    # a folder of RGB frames (screen grabs, an RGB stack saved as an image sequence): --channel picks a colour
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    colour = np.random.default_rng(1).integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    for i in range(3):
        tifffile.imwrite(rgb / f"s{i:02d}.tif", colour[i], photometric="rgb")
    with pytest.raises(ExodfError, match=r"s00.tif: the frames have 3 colour samples \(RGB\).*--channel N \(0..2\)"):
        read_movie(rgb)
    np.testing.assert_array_equal(read_movie(rgb, channel=1), colour[..., 1])
    # 0 is the one channel and plane of every single-channel movie: one option fits a folder of mixed movies
    assert read_movie(frames, channel=0, plane=0).shape == (3, 8, 8)
    assert read_movie(tmp_path / "tyx.tif", channel=0, plane=0).shape == (5, 8, 8)
    # a file that does not name its axes: --channel cannot find its channels (not 'a single channel')
    tifffile.imwrite(tmp_path / "qq.tif", np.zeros((5, 2, 8, 8), np.uint16))
    with pytest.raises(ExodfError, match=r"does not name its axes \(shape \(5, 2, 8, 8\)\).*Stack to Hyperstack"):
        read_movie(tmp_path / "qq.tif", channel=1)


def test_imagej_files_with_one_ifd_are_whole_movies(tmp_path) -> None:
    """ImageJ writes movies over 4 GB with their first IFD only (the images follow contiguously)."""
    import struct

    import tifffile

    from exodf.errors import ExodfError
    from exodf.io import read_movie

    movie = np.arange(12 * 16 * 16, dtype=np.uint16).reshape(12, 16, 16)
    path = tmp_path / "one ifd.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    with open(path, "r+b") as f:  # end the IFD chain after the first one, as ImageJ does for big files
        ifd = struct.unpack("<I", f.read(8)[4:8])[0]
        f.seek(ifd)
        n = struct.unpack("<H", f.read(2))[0]
        f.seek(ifd + 2 + 12 * n)
        f.write(struct.pack("<I", 0))
    with tifffile.TiffFile(path) as t:
        assert len(t.pages) == 1 and t.imagej_metadata["images"] == 12
    np.testing.assert_array_equal(read_movie(path), movie)
    with tifffile.TiffFile(path) as t:
        end = t.series[0].dataoffset + t.series[0].nbytes
    (tmp_path / "cut.tif").write_bytes(path.read_bytes()[: end - 700])  # its last images missing
    with pytest.raises(ExodfError, match="cut.tif: truncated"):
        read_movie(tmp_path / "cut.tif")


def test_check_movie_refuses_what_no_event_can_be_detected_in() -> None:
    from exodf.errors import ExodfError
    from exodf.io import check_movie

    ok = np.ones((3, 8, 8), np.uint16)
    assert check_movie(ok) is ok
    for bad, says in ((np.ones((1, 8, 8)), "at least 2 frames"), (np.ones((2, 0, 8)), "at least 2 frames"),
                      (np.ones((8, 8)), "at least 2 frames"), (ok > 0, "bool"), (ok.astype(np.complex64), "complex64"),
                      ("movie.tif", "numpy array, got str"), (np.full((3, 8, 8), 1e300), "beyond float32")):
        with pytest.raises(ExodfError, match=says):
            check_movie(bad, "my movie")  # type: ignore[arg-type]


def test_movie_layouts_fiji_reads_are_read_too(tmp_path: Path) -> None:
    """Pages appended one at a time (one series each), per-frame files saved as (1, Y, X)."""
    m = np.random.default_rng(0).integers(0, 1000, (6, 16, 20)).astype(np.uint16)
    for i, f in enumerate(m):
        tifffile.imwrite(tmp_path / "appended.tif", f, append=i > 0)
    np.testing.assert_array_equal(read_movie(tmp_path / "appended.tif"), m)
    (tmp_path / "frames").mkdir()
    for i, f in enumerate(m):
        tifffile.imwrite(tmp_path / "frames" / f"f{i:03d}.tif", f[None])
    np.testing.assert_array_equal(read_movie(tmp_path / "frames"), m)


def test_per_frame_files_of_another_bit_depth_are_refused(tmp_path: Path) -> None:
    m = np.random.default_rng(0).integers(300, 1000, (3, 8, 8)).astype(np.uint16)
    for i, f in enumerate(m):
        tifffile.imwrite(tmp_path / f"f{i:03d}.tif", f.astype(np.uint8) if i == 2 else f)  # 460 would read 204
    with pytest.raises(ExodfError, match="f002.tif: pixel type uint8 differs from f000.tif's uint16"):
        read_movie(tmp_path)


def test_pages_of_a_copy_on_write_map_are_not_dropped(tmp_path: Path) -> None:
    """Releasing the pages of a private map ('c') threw the caller's edits away."""
    from exodf.io import MappedPages, check_movie

    np.save(tmp_path / "m.npy", np.arange(6 * 64 * 64, dtype=np.float32).reshape(6, 64, 64))
    mm = np.load(tmp_path / "m.npy", mmap_mode="c")
    mm[:] = 100.0
    check_movie(mm)
    MappedPages(mm).release_before(5)
    assert float(mm[0, 0, 0]) == float(mm[5, 0, 0]) == 100.0


def test_an_empty_mask_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "mask.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(ExodfError, match="the mask is empty"):
        read_mask(tmp_path / "mask.tif")


def test_a_folder_of_movies_passes_over_masks_probability_maps_and_weights(tmp_path: Path) -> None:
    """exodf simulate leaves cell_mask.tif beside movie.tif, detect --probabilities a map, users their
    weights: each was a FAILED movie of every batch (exit status 1)."""
    import h5py

    from exodf.io import movie_paths, write_probabilities

    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "movie.tif", rng.integers(0, 100, (6, 16, 16), dtype=np.uint16))
    tifffile.imwrite(tmp_path / "short.tif", rng.integers(0, 100, (3, 16, 16), dtype=np.uint16))  # (read as SYX)
    tifffile.imwrite(tmp_path / "cell_mask.tif", np.ones((16, 16), np.uint8))
    write_probabilities(tmp_path / "movie_probabilities.tif", rng.random((6, 16, 16, 3)).astype(np.float32))
    with h5py.File(tmp_path / "net_weights.h5", "w") as f:
        f["model_weights/conv"] = np.zeros(3)
    with h5py.File(tmp_path / "original.h5", "w") as f:
        f["dataset"] = np.zeros((6, 16, 16), np.uint16)
    # a batch lost a subfolder of frames and a microscope's own file without a word; tables and hidden files
    # (exodf's outputs beside the movies) are still passed over silently
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "t000.tif").write_bytes(b"x")
    (tmp_path / "out").mkdir()  # an output folder of tables: passed over without a word
    (tmp_path / "out" / "movie_events.csv").write_bytes(b"x")
    for name in ("cell2.nd2", "movie_events.csv", "scores.json", ".DS_Store", "README", "net.keras"):
        (tmp_path / name).write_bytes(b"x")
    skipped: list[tuple[Path, str]] = []
    found = movie_paths([tmp_path], skipped)
    assert [p.name for p in found] == ["movie.tif", "original.h5", "short.tif"]
    assert {p.name: why for p, why in skipped} == {
        "cell_mask.tif": "a single image, not a movie (a mask?)",
        "movie_probabilities.tif": "an exodf probability map",
        "net_weights.h5": "an HDF5 file without the original's 'dataset' (weights?)",
        "frames": "a subfolder, not searched: give it as its own argument (a folder of per-frame TIFFs is one movie)",
        "cell2.nd2": "not a movie file exodf reads (.tif/.tiff/.h5): convert it to TIFF (e.g. in Fiji)"}
    import shutil

    for name in ("cell2.nd2", "movie_events.csv", "scores.json", ".DS_Store", "README", "net.keras"):
        (tmp_path / name).unlink()
    shutil.rmtree(tmp_path / "frames")
    shutil.rmtree(tmp_path / "out")
    assert movie_paths([tmp_path / "cell_mask.tif"]) == [tmp_path / "cell_mask.tif"]  # named: read (and refused)
    # a movie cut short in copying shows tifffile only its first page: it is a movie to fail, not a mask to skip
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, rng.integers(0, 100, (40, 64, 64), dtype=np.uint16), imagej=True,
                     metadata={"axes": "TYX"})
    cut = tmp_path / "cut" / "cell3.tif"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[:100_000])
    (tmp_path / "cut" / "cell4.tif").write_bytes(whole.read_bytes())
    assert movie_paths([cut.parent]) == [cut, cut.parent / "cell4.tif"]
    with pytest.raises(ExodfError, match="cell3.tif: .*(truncated|damaged)"):
        read_movie(cut)
    only = tmp_path / "only_masks"
    (only / "sub").mkdir(parents=True)
    tifffile.imwrite(only / "mask.tif", np.ones((16, 16), np.uint8))
    with pytest.raises(ExodfError, match="holds no movie: its 1 image file.* a single image"):
        movie_paths([only])
    (only / "mask.tif").unlink()
    with pytest.raises(ExodfError, match="subfolders are not searched"):
        movie_paths([only])


def test_several_series_are_refused_and_appended_pages_are_a_movie(tmp_path: Path) -> None:
    """A multi-position OME-TIFF, or a preview before the movie, was read as its first series alone (exit 0);
    pages of differing sizes were 'a single 2D image'; pages appended one by one were skipped in a folder."""
    with tifffile.TiffWriter(tmp_path / "positions.ome.tif") as tw:
        tw.write(MOVIE[::-1], metadata={"axes": "TYX"})
        tw.write(MOVIE, metadata={"axes": "TYX"})
    with pytest.raises(ExodfError, match=r"holds 2 image series \(0: TYX \(6, 12, 16\); 1: TYX .* save each series"):
        read_movie(tmp_path / "positions.ome.tif")
    with tifffile.TiffWriter(tmp_path / "odd.tif") as tw:
        for t, frame in enumerate(MOVIE):
            tw.write(frame if t != 3 else frame[:4, :4], contiguous=False)
    with pytest.raises(ExodfError, match=r"odd.tif: its pages are not one stack: page 4 is 4x4 px of uint16, page 1 "
                                         r"12x16 px"):
        read_movie(tmp_path / "odd.tif")
    # previews beside the movie are not series of their own: a reduced page, an OME thumbnail
    with tifffile.TiffWriter(tmp_path / "preview.tif") as tw:
        tw.write(MOVIE, metadata=None)
        tw.write(MOVIE[0, ::4, ::4], subfiletype=1, metadata=None)
    with tifffile.TiffWriter(tmp_path / "thumb.ome.tif", ome=True) as tw:
        tw.write(MOVIE, metadata={"axes": "TYX"})
        tw.write(MOVIE[0, ::4, ::4], metadata={"axes": "YX"})
    for name in ("preview.tif", "thumb.ome.tif"):
        np.testing.assert_array_equal(read_movie(tmp_path / name), MOVIE)
    with tifffile.TiffWriter(tmp_path / "planes.ome.tif", ome=True) as tw:  # one OME image per plane
        for frame in MOVIE[:3]:
            tw.write(frame, metadata={"axes": "YX"})
    with pytest.raises(ExodfError, match=r"holds 3 image series \(0: YX \(12, 16\)"):  # (was a StopIteration)
        read_movie(tmp_path / "planes.ome.tif")
    folder = tmp_path / "cells"
    folder.mkdir()
    with tifffile.TiffWriter(folder / "appended.tif") as tw:
        for frame in MOVIE:
            tw.write(frame, contiguous=False)
    tifffile.imwrite(folder / "cell_mask.tif", np.ones((12, 16), np.uint8))
    skipped: list = []
    assert movie_paths([folder], skipped) == [folder / "appended.tif"]
    assert [f.name for f, _ in skipped] == ["cell_mask.tif"]
    np.testing.assert_array_equal(read_movie(folder / "appended.tif"), MOVIE)


def test_time_labelled_as_channels_and_a_colour_image_are_named(tmp_path: Path) -> None:
    """'choose --channel N' led to 'a single 2D image' for a movie whose frames were labelled channels (a Fiji
    or Bio-Formats mix-up) and for a screenshot."""
    tifffile.imwrite(tmp_path / "c.tif", MOVIE, imagej=True, metadata={"axes": "CYX"})
    for channel in (None, 1):
        with pytest.raises(ExodfError, match=r"6 channels and no time axis .* Re-order Hyperstacks"):
            read_movie(tmp_path / "c.tif", channel=channel)
    tifffile.imwrite(tmp_path / "shot.tif", np.zeros((12, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(ExodfError, match=r"shot.tif: this is a single colour image \(shape \(12, 16, 3\)\), not a"):
        read_movie(tmp_path / "shot.tif")
    # four frames written without metadata: tifffile stores them as one RGBA image; said how to save them
    tifffile.imwrite(tmp_path / "four.tif", np.zeros((4, 16, 16), np.uint16), photometric="rgb",
                     planarconfig="separate", extrasamples=["unspecified"])
    with pytest.raises(ExodfError, match=r"If its 4 planes are frames, .* photometric='minisblack'"):
        read_movie(tmp_path / "four.tif")


@pytest.mark.parametrize("name, cell", [
    ("cell1.tif", "cell1"), ("Cell1.ome.tiff", "Cell1"), ("cell1_events.csv", "cell1"), ("Cell1-GT.csv", "Cell1"),
    ("cell1.tif_secretions.csv.csv", "cell1"), ("cell1_mask.tif", "cell1"), ("cell1_cell_mask.tif", "cell1"),
    ("cell1.h5", "cell1"), ("cell10_predictions.txt", "cell10"), ("frames", "frames"),
])
def test_files_are_paired_by_the_cell_they_stand_for(name: str, cell: str) -> None:
    """evaluate, rates and train pair movies, tables and masks by these names, whatever their case."""
    assert cell_name(Path("some") / name) == cell
    assert pairing_key(name) == cell.lower()


def test_a_one_frame_stack_is_passed_over_and_two_frame_series_are_named(tmp_path: Path) -> None:
    """A (1, Y, X) snapshot beside the movies stopped the whole folder (a 2D mask was passed over); a folder of
    two channels' per-frame files, as many of each, was said to hold 'single images (a mask?)'."""
    rng = np.random.default_rng(0)
    movies = tmp_path / "movies"
    movies.mkdir()
    tifffile.imwrite(movies / "cell1.tif", rng.integers(0, 100, (6, 16, 16), dtype=np.uint16))
    tifffile.imwrite(movies / "snap.tif", rng.integers(0, 100, (1, 16, 16), dtype=np.uint16))  # axes QYX
    tifffile.imwrite(movies / "rgb.tif", rng.integers(0, 100, (16, 16, 3), dtype=np.uint8))  # a screenshot
    skipped: list[tuple[Path, str]] = []
    assert movie_paths([movies], skipped) == [movies / "cell1.tif"]
    assert {p.name: why for p, why in skipped} == {"snap.tif": "a single image, not a movie (a mask?)",
                                                  "rgb.tif": "a single image, not a movie (a mask?)"}
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(5):
        for ch in ("GFP", "RFP"):
            tifffile.imwrite(frames / f"t{t + 1:03d}_{ch}.tif", rng.integers(0, 100, (16, 16), dtype=np.uint16))
    with pytest.raises(ExodfError) as e:
        movie_paths([frames])
    assert str(e.value) == (f"{frames}: 2 series of per-frame images in one folder (tN_GFP.tif, tN_RFP.tif; channels "
                            "or positions?): put each series in its own folder and give that folder")
