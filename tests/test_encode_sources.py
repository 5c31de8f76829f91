"""`cmhash encode --from dchmt|dcmh`: the raw files of the field, written here exactly in their documented
layouts, encode to the same features as the same images and captions through a manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse
from PIL import Image, ImageDraw

from cmhash.cli import main
from cmhash.data import DataError, load_native
from cmhash.data.formats import matfile
from cmhash.data.formats.matfile import MatArray, mat_variables, read_strings
from cmhash.encoders import ClipEncoder, DchmtSource, DcmhSource, encode_manifest, encode_source, output_paths
from cmhash.encoders.mat_sources import image_layout, map_paths

H, W = 30, 40  # not square, so a swapped height/width shows
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white"]
CAPTIONS = ["a red circle", "blue box", "green thing", "yellow", "purple ellipse", "orange", "white"]
LABELS = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1], [1, 1, 1]], dtype=np.float64)
N = len(COLOURS)
FOREIGN = "/home/author/datasets/flickr25k"  # where the authors' paths point


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir: Path) -> ClipEncoder:
    return ClipEncoder(tiny_clip_dir, device="cpu", batch_size=3)


def pixels(k: int) -> np.ndarray:
    img = Image.new("RGB", (W, H), (10 * k, 0, 0))
    ImageDraw.Draw(img).ellipse((3 + k, 2, W - 4, H - 3 - k), fill=COLOURS[k])
    return np.asarray(img)


@pytest.fixture
def root(tmp_path) -> Path:
    """The images on disk: PNGs in two folders and one JPEG (items 0-6 -> a/0.png, b/1.png, ..., b/6.jpg)."""
    folder = tmp_path / "images"
    for k in range(N):
        path = folder / relative(k)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels(k)).save(path, quality=95)
    return folder


def relative(k: int) -> str:
    return f"{'ab'[k % 2]}/{k}.{'jpg' if k == N - 1 else 'png'}"


def stored_paths() -> list[str]:
    return [f"{FOREIGN}/{relative(k)}" for k in range(N)]


def reference(encoder, root: Path, tmp_path: Path, captions=CAPTIONS, images=None) -> object:
    """Today's manifest path over the same images and captions: the expected dataset."""
    manifest = tmp_path / "reference.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([("image", "text", "id", "labels"),
                                 *[(images[k] if images else relative(k), captions[k], k, str(LABELS[k].astype(int).tolist()))
                                   for k in range(N)]])
    encode_manifest(manifest, root, tmp_path / "reference.npz", encoder, progress=False)
    return load_native(tmp_path / "reference.npz")


def assert_same_dataset(out: Path, expected) -> None:
    got = load_native(out)
    for field in ("image", "text", "labels", "ids"):
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), err_msg=field)


# --- writers: the files exactly as their tools write them ------------------------------------------------------

MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def write_v73(path: Path, variables: dict[str, object]) -> None:
    """A MATLAB v7.3 file: HDF5 with MATLAB's 512-byte header, arrays column-major (stored transposed),
    char as UTF-16 code units (uint16), cell arrays as object references into ``#refs#``.
    Values: ("char", list of str) a char matrix, ("cell", list of str) a cell column, or a numeric array."""
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            if isinstance(value, tuple) and value[0] == "char":
                width = max(len(s) for s in value[1])
                codes = np.array([[ord(c) for c in s.ljust(width)] for s in value[1]], dtype=np.uint16)
                ds = f.create_dataset(name, data=codes.T)
                ds.attrs["MATLAB_class"], ds.attrs["MATLAB_int_decode"] = np.bytes_("char"), np.int32(2)
            elif isinstance(value, tuple) and value[0] == "cell":
                targets = []
                for k, s in enumerate(value[1]):
                    codes = np.array([[ord(c) for c in s]], dtype=np.uint16)  # a 1 x L char
                    if not s:
                        ds = refs.create_dataset(f"{name}_{k}", data=np.zeros(2, dtype=np.uint64))
                        ds.attrs["MATLAB_empty"] = np.uint8(1)
                    else:
                        ds = refs.create_dataset(f"{name}_{k}", data=codes.T)
                    ds.attrs["MATLAB_class"], ds.attrs["MATLAB_int_decode"] = np.bytes_("char"), np.int32(2)
                    targets.append(ds.ref)
                cell = f.create_dataset(name, data=np.array([targets], dtype=h5py.ref_dtype))  # N x 1 cell -> (1, N)
                cell.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                value = np.asarray(value)
                cls = "uint8" if value.dtype == np.uint8 else "double"
                f.create_dataset(name, data=value.T).attrs["MATLAB_class"] = np.bytes_(cls)
    with open(path, "r+b") as f:
        f.write(MATLAB_HEADER)


def matlab_iall(n: int = N) -> np.ndarray:
    """DCMH's IAll as MATLAB holds it: height x width x 3 x items, uint8."""
    return np.stack([pixels(k) for k in range(n)], axis=-1)


def write_dchmt(folder: Path, *, index=None, captions=None, labels=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in (("index", index), ("caption", captions), ("label", labels)):
        if value is not None:
            value(folder / f"{name}.mat")
    return folder


def v5(name: str, value):
    return lambda path: scipy.io.savemat(path, {name: value})


def v73(name: str, value):
    return lambda path: write_v73(path, {name: value})


# --- reading strings -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("writer", [
    v5("index", np.array(["/a/x.jpg", "/a/yy.jpg", ""], dtype=object)),            # cell array (MATLAB {...})
    v5("index", np.array(["/a/x.jpg", "/a/yy.jpg", ""])),                          # char matrix (MITH's savemat)
    v73("index", ("cell", ["/a/x.jpg", "/a/yy.jpg", ""])),
    v73("index", ("char", ["/a/x.jpg", "/a/yy.jpg", ""])),
])
def test_strings_read_from_every_layout(tmp_path, writer):
    writer(tmp_path / "index.mat")
    var = next(v for v in mat_variables(tmp_path / "index.mat") if v.name == "index")
    assert read_strings(var) == ["/a/x.jpg", "/a/yy.jpg", ""]


def test_numbers_are_not_strings(tmp_path):
    scipy.io.savemat(tmp_path / "index.mat", {"index": np.ones((3, 2))})
    with pytest.raises(DataError, match=r"index\.mat.*field 'index'.*not strings"):
        read_strings(mat_variables(tmp_path / "index.mat")[0])


# --- dchmt -----------------------------------------------------------------------------------------------------

def test_dchmt_v5_cells_with_foreign_paths_equal_the_manifest(encoder, root, tmp_path):
    folder = write_dchmt(tmp_path / "mir", index=v5("index", np.array(stored_paths(), dtype=object)),
                         captions=v5("caption", np.array(CAPTIONS)), labels=v5("label", LABELS))
    source = DchmtSource(folder, image_root=root)
    assert [p.relative_to(root).as_posix() for p in source.paths] == [relative(k) for k in range(N)]
    encode_source(source, tmp_path / "out.npz", encoder, progress=False)
    assert_same_dataset(tmp_path / "out.npz", reference(encoder, root, tmp_path))


def test_dchmt_v73_cells_and_caption_txt_equal_the_manifest(encoder, root, tmp_path):
    folder = write_dchmt(tmp_path / "nus", index=v73("index", ("cell", stored_paths())), labels=v73("label", LABELS))
    (folder / "caption.txt").write_text("".join(c + "\n" for c in CAPTIONS))
    encode_source(DchmtSource(folder, image_root=root), tmp_path / "out.h5", encoder, progress=False)
    assert_same_dataset(tmp_path / "out.h5", reference(encoder, root, tmp_path))


def test_dchmt_v73_char_paths_with_path_map_report_missing_image_and_empty_caption(encoder, root, tmp_path):
    paths = [p.replace(FOREIGN, "D:\\data\\mir").replace("/", "\\") if k < 4 else p
             for k, p in enumerate(stored_paths())]
    paths[2] = paths[2].replace("2.png", "gone.png")
    captions = [*CAPTIONS[:4], "", *CAPTIONS[5:]]
    folder = write_dchmt(tmp_path / "mir", index=v73("index", ("char", paths)),
                         captions=v73("caption", ("cell", captions)), labels=v5("category", LABELS))
    source = DchmtSource(folder, path_map=[("D:\\data\\mir", str(root)), (FOREIGN, str(root))])
    assert source.missing == [2]
    (root / relative(6)).write_bytes(b"\xff\xd8 not a jpeg")
    summary = encode_source(source, tmp_path / "out.npz", encoder, progress=False)
    reasons = {issue.row: issue.reason for issue in summary.issues}
    assert reasons[2].startswith("image file not found (index.mat 'index' item 2: D:\\data\\mir\\a\\gone.png -> ")
    assert reasons[4] == "empty caption (caption.mat 'caption' item 4)" and len(reasons) == 3
    assert reasons[6].startswith("unreadable image (") and f"(index.mat 'index' item 6: {FOREIGN}/a/6.jpg -> " in reasons[6]
    expected = reference(encoder, root, tmp_path, captions, images=[r.replace("2.png", "gone.png")
                                                                    for r in map(relative, range(N))])
    assert_same_dataset(tmp_path / "out.npz", expected)
    with pytest.raises(DataError, match=r"mir'.*row 2 \(id 2\): image file not found \(index\.mat 'index' item 2"):
        encode_source(source, tmp_path / "strict.npz", encoder, strict=True, progress=False)


def test_path_mapping_rules():
    stored = ["/x/mir/a/1.jpg", "/x/mir/b/2.jpg"]
    assert map_paths(stored, "/data", (), "index.mat", "index") == [Path("/data/a/1.jpg"), Path("/data/b/2.jpg")]
    assert map_paths(stored[:1], "/data", (), "index.mat", "index") == [Path("/data/1.jpg")]
    assert map_paths(["im1.jpg", "im2.jpg"], "/data", (), "index.mat", "index")[1] == Path("/data/im2.jpg")
    assert map_paths(stored, None, [("", "/r")], "i", "index")[0] == Path("/r/x/mir/a/1.jpg")
    with pytest.raises(DataError, match=r"index\.mat.*field 'index'.*item 1: image path '/x/mir/b/2.jpg' starts with none"):
        map_paths(stored, None, [("/x/mir/a", "/d")], "index.mat", "index")


@pytest.mark.parametrize("change, match", [
    (dict(labels=v5("label", LABELS[:-1])),
     r"label\.mat.*field 'label'.*label row count differs: 6 rows, but index\.mat 'index' has 7 items"),
    (dict(labels=v5("label", LABELS.T)), r"label row count differs.*stored transposed"),
    (dict(labels=v5("label", LABELS * 2)), r"label\.mat.*field 'label'.*0/1; item 0 has \[2\.0, 2\.0\]"),
    (dict(captions=v5("caption", np.array(CAPTIONS[:-1]))),
     r"caption\.mat.*field 'caption'.*caption count differs: 6, but index\.mat 'index' has 7"),
    (dict(captions=v5("tags_str", np.array(CAPTIONS))),
     r"caption\.mat.*no text/caption variable: looked for 'caption' or .*found tags_str; name it with --keys text="),
    (dict(index=v5("index", np.ones((N, 4)))), r"index\.mat.*field 'index'.*not strings"),
])
def test_dchmt_errors_name_file_variable_and_item(root, tmp_path, change, match):
    files = dict(index=v5("index", np.array(stored_paths(), dtype=object)), captions=v5("caption", np.array(CAPTIONS)),
                 labels=v5("label", LABELS))
    folder = write_dchmt(tmp_path / "d", **{**files, **change})
    with pytest.raises(DataError, match=match):
        DchmtSource(folder, image_root=root)


def test_dchmt_keys_name_unusual_variables_and_wrong_root_fails_fast(encoder, root, tmp_path):
    folder = write_dchmt(tmp_path / "d", index=v5("imgs_abs", np.array(stored_paths(), dtype=object)),
                         captions=v5("tags_str", np.array(CAPTIONS)), labels=v5("category", LABELS))
    source = DchmtSource(folder, image_root=root, keys={"image": "imgs_abs", "text": "tags_str"})
    assert len(source) == N and source.text_origin == "caption.mat 'tags_str'"
    with pytest.raises(DataError, match=r"none of the 7 images exists: item 0 is stored as '/home/author.*check --image-root"):
        DchmtSource(folder, image_root=tmp_path / "elsewhere", keys={"image": "imgs_abs", "text": "tags_str"})
    (folder / "caption.txt").write_text("one\n")
    (folder / "caption.mat").unlink()
    with pytest.raises(DataError, match=r"caption\.txt.*caption count differs: 1, but index\.mat 'imgs_abs' has 7"):
        DchmtSource(folder, image_root=root, keys={"image": "imgs_abs"})


# --- dcmh ------------------------------------------------------------------------------------------------------

TAGS = np.eye(N, 5)[:, ::-1] + np.eye(N, 5)  # a small bag of words


def test_iall_as_matlab_writes_it_equals_the_png_manifest(encoder, root, tmp_path):
    write_v73(tmp_path / "mir.mat", {"IAll": matlab_iall(), "YAll": TAGS, "LAll": LABELS})
    with h5py.File(tmp_path / "mir.mat") as f:
        assert f["IAll"].shape == (N, 3, W, H)  # what h5py shows of MATLAB's H x W x 3 x N
    source = DcmhSource(tmp_path / "mir.mat")
    assert source.layout == (3, 0, 1, 2) and source.texts is None
    summary = encode_source(source, tmp_path / "out.npz", encoder, progress=False)
    got = load_native(tmp_path / "out.npz")
    images = [relative(k).replace(".jpg", ".png") for k in range(N)]
    for k in range(N):
        Image.fromarray(pixels(k)).save(root / images[k])
    expected = reference(encoder, root, tmp_path, images=images)
    np.testing.assert_array_equal(got.image, expected.image)
    np.testing.assert_array_equal(got.text, TAGS.astype(np.float32))
    np.testing.assert_array_equal(got.labels, expected.labels)
    assert summary.issues == []
    assert "YAll" in output_paths(tmp_path / "out.npz")["encoder"].read_text()


@pytest.mark.parametrize("save", ["v5", "v5-compressed", "v73-separate-files", "python-items-first"])
def test_iall_layouts_and_captions_equal_the_manifest(encoder, root, tmp_path, save):
    iall = matlab_iall()
    if save == "v5":
        scipy.io.savemat(tmp_path / "mir.mat", {"IAll": iall, "LAll": LABELS})
    elif save == "v5-compressed":
        scipy.io.savemat(tmp_path / "mir.mat", {"IAll": iall, "LAll": LABELS}, do_compression=True)
    elif save == "v73-separate-files":
        (tmp_path / "mir.mat").mkdir()
        write_v73(tmp_path / "mir.mat" / "mirflickr25k-iall.mat", {"IAll": iall})
        scipy.io.savemat(tmp_path / "mir.mat" / "mirflickr25k-lall.mat", {"LAll": LABELS})
    else:
        with h5py.File(tmp_path / "mir.mat", "w") as f:  # h5py from Python: items x height x width x 3, no transposing
            f["images"], f["labels"] = np.moveaxis(iall, -1, 0), LABELS
    (tmp_path / "caption.txt").write_text("\n".join(CAPTIONS))
    source = DcmhSource(tmp_path / "mir.mat", captions=tmp_path / "caption.txt")
    if save == "v5":
        assert isinstance(source.array._array, np.memmap)  # read in slices, not loaded whole
    encode_source(source, tmp_path / "out.npz", encoder, progress=False)
    images = [relative(k).replace(".jpg", ".png") for k in range(N)]
    for k in range(N):
        Image.fromarray(pixels(k)).save(root / images[k])
    assert_same_dataset(tmp_path / "out.npz", reference(encoder, root, tmp_path, images=images))


def test_matarray_slices_equal_the_whole_array(tmp_path):
    iall = matlab_iall()
    write_v73(tmp_path / "a.mat", {"IAll": iall})
    scipy.io.savemat(tmp_path / "b.mat", {"IAll": iall})
    for file in ("a.mat", "b.mat"):
        array = MatArray(mat_variables(tmp_path / file)[0])
        assert array.shape == iall.shape and array.dtype == np.uint8
        np.testing.assert_array_equal(array.take(3, 2, 5), iall[..., 2:5])


def test_compressed_v5_too_big_to_decompress_is_refused(tmp_path, monkeypatch):
    scipy.io.savemat(tmp_path / "mir.mat", {"IAll": matlab_iall(), "LAll": LABELS}, do_compression=True)
    monkeypatch.setattr(matfile, "MAX_WHOLE_ARRAY_BYTES", 1000)
    with pytest.raises(DataError, match=r"mir\.mat.*field 'IAll'.*zlib-compressed.*-v7\.3"):
        DcmhSource(tmp_path / "mir.mat")


@pytest.mark.parametrize("variables, match", [
    ({"IAll": matlab_iall(), "YAll": TAGS, "LAll": LABELS[:-1]}, r"field 'IAll'.*no first or last axis of 6 items"),
    ({"IAll": matlab_iall(), "YAll": TAGS[:-1], "LAll": LABELS}, r"field 'YAll'.*row count differs: 6, but mir\.mat 'IAll' has 7"),
    ({"IAll": matlab_iall().astype(float), "YAll": TAGS, "LAll": LABELS}, r"field 'IAll'.*float64 values; raw images"),
    ({"IAll": matlab_iall()[:, :, 0], "YAll": TAGS, "LAll": LABELS}, r"field 'IAll'.*raw images must be 4-D"),
    ({"I_all": matlab_iall(), "YAll": TAGS, "LAll": LABELS}, r"no image variable: looked for 'IAll' or.*--keys image="),
])
def test_dcmh_errors_name_file_and_variable(tmp_path, variables, match):
    write_v73(tmp_path / "mir.mat", variables)
    with pytest.raises(DataError, match=match):
        DcmhSource(tmp_path / "mir.mat")


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_sparse_yall_gives_the_same_text_features(encoder, tmp_path, version):
    tags = scipy.sparse.csc_matrix(TAGS)
    if version == "v5":
        scipy.io.savemat(tmp_path / "mir.mat", {"IAll": matlab_iall(), "YAll": tags, "LAll": LABELS})
    else:
        write_v73(tmp_path / "mir.mat", {"IAll": matlab_iall(), "LAll": LABELS})
        with h5py.File(tmp_path / "mir.mat", "a") as f:  # MATLAB's sparse layout: data, row indices, column starts
            g = f.create_group("YAll")
            g.attrs["MATLAB_class"], g.attrs["MATLAB_sparse"] = np.bytes_("double"), np.uint64(N)
            g["data"], g["ir"], g["jc"] = tags.data, tags.indices.astype(np.uint64), tags.indptr.astype(np.uint64)
    encode_source(DcmhSource(tmp_path / "mir.mat"), tmp_path / "out.npz", encoder, progress=False)
    np.testing.assert_array_equal(load_native(tmp_path / "out.npz").text, TAGS.astype(np.float32))


def test_image_layout_rules():
    assert image_layout((224, 224, 3, 10), 10, "f", "IAll") == (3, 0, 1, 2)  # MATLAB's H x W x 3 x N
    assert image_layout((10, 3, 224, 200), 10, "f", "IAll") == (0, 2, 3, 1)  # N x 3 x H x W
    assert image_layout((10, 224, 200, 3), 10, "f", "IAll") == (0, 1, 2, 3)  # N x H x W x 3


class Interrupt(Exception):
    pass


def test_dcmh_resume_after_interruption_gives_identical_output(encoder, tmp_path, monkeypatch):
    write_v73(tmp_path / "mir.mat", {"IAll": matlab_iall(), "YAll": TAGS, "LAll": LABELS})
    encode_source(DcmhSource(tmp_path / "mir.mat"), tmp_path / "full.npz", encoder, progress=False)
    calls, original = [], encoder.encode_images

    def crash_on_third(imgs):
        calls.append(len(imgs))
        if len(calls) == 3:
            raise Interrupt
        return original(imgs)

    monkeypatch.setattr(encoder, "encode_images", crash_on_third)
    with pytest.raises(Interrupt):
        encode_source(DcmhSource(tmp_path / "mir.mat"), tmp_path / "out.npz", encoder, progress=False)
    calls.clear()
    monkeypatch.setattr(encoder, "encode_images", lambda imgs: calls.append(len(imgs)) or original(imgs))
    summary = encode_source(DcmhSource(tmp_path / "mir.mat"), tmp_path / "out.npz", encoder, progress=False)
    assert (summary.resumed_chunks, summary.chunks, calls) == (2, 3, [1])
    assert_same_dataset(tmp_path / "out.npz", load_native(tmp_path / "full.npz"))


# --- the command -----------------------------------------------------------------------------------------------

def test_cli_from_dchmt_and_dcmh(tiny_clip_dir, root, tmp_path, capsys):
    folder = write_dchmt(tmp_path / "mir", index=v5("index", np.array(stored_paths(), dtype=object)),
                         captions=v5("caption", np.array(CAPTIONS)), labels=v5("label", LABELS))
    (root / relative(3)).unlink()
    base = ["encode", "--checkpoint", str(tiny_clip_dir), "--batch-size", "3", "--device", "cpu"]
    assert main([*base, "--from", "dchmt", str(folder), "--image-root", str(root), "--out", str(tmp_path / "a.npz")]) == 0
    out, err = capsys.readouterr()
    assert "encoded 6 of 7 rows" in out and "skipped 1 rows (1 image file not found)" in out
    assert "1 of 7 images are missing (first: item 3" in err
    write_v73(tmp_path / "mir.mat", {"IAll": matlab_iall(), "YAll": TAGS, "LAll": LABELS})
    assert main([*base, "--from", "dcmh", str(tmp_path / "mir.mat"), "--out", str(tmp_path / "b.npz")]) == 0
    assert "text features: YAll of" in capsys.readouterr().out and load_native(tmp_path / "b.npz").dims == (16, 5)
    for bad, match in ((["--from", "dchmt", str(folder), "--out", "x.npz"], "paths need --image-root"),
                       (["--from", "dcmh", str(tmp_path / "mir.mat"), "--image-root", "r", "--out", "x.npz"],
                        "go with --from dchmt"),
                       (["--from", "wiki", str(folder), "--out", "x.npz"], "unknown layout"),
                       (["--from", "dchmt", str(folder), "--keys", "index", "--image-root", "r", "--out", "x.npz"],
                        "OLD=NEW form"),
                       (["--out", "x.npz"], "give --images and --manifest")):
        assert main([*base, *bad]) == 2
        assert match in capsys.readouterr().err
