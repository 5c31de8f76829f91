"""Every dataset format written by the test itself, loaded back, and every kind of bad input."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from cmhash.data import CrossModalDataset, DataError, load_dataset, save_dataset
from cmhash.data.formats import detect_format

N, DI, DT, C = 30, 6, 5, 4


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = (rng.random((N, C)) < 0.4).astype(np.uint8)
    labels[np.arange(N), rng.integers(C, size=N)] = 1  # every item labelled
    return {"image": rng.standard_normal((N, DI)).astype(np.float32),
            "text": rng.standard_normal((N, DT)).astype(np.float32), "labels": labels}


def assert_same(ds: CrossModalDataset, arrays: dict[str, np.ndarray], rows=slice(None)) -> None:
    np.testing.assert_array_equal(ds.image, arrays["image"][rows])
    np.testing.assert_array_equal(ds.text, arrays["text"][rows])
    np.testing.assert_array_equal(ds.labels, arrays["labels"][rows])


def write_v73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte header, column-major."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            if scipy.sparse.issparse(value):
                csc = scipy.sparse.csc_matrix(value)
                g = f.create_group(name)
                g.attrs["MATLAB_class"] = np.bytes_("double")
                g.attrs["MATLAB_sparse"] = np.uint64(csc.shape[0])
                g["data"], g["ir"], g["jc"] = csc.data, csc.indices.astype(np.uint64), csc.indptr.astype(np.uint64)
            else:
                cls = "char" if value.dtype.kind == "U" else "double"
                data = np.char.encode(value).view(np.uint8).astype(np.uint16) if cls == "char" else value
                f.create_dataset(name, data=np.asarray(data).T).attrs["MATLAB_class"] = np.bytes_(cls)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")


# ---- dcmh ----------------------------------------------------------------------------------

def test_dcmh_separate_v5_files(tmp_path, arrays):
    scipy.io.savemat(tmp_path / "mirflickr25k-iall.mat", {"IAll": arrays["image"]})
    scipy.io.savemat(tmp_path / "mirflickr25k-yall.mat", {"YAll": arrays["text"].astype(np.float64)})
    scipy.io.savemat(tmp_path / "mirflickr25k-lall.mat", {"LAll": arrays["labels"].astype(np.float64)})
    scipy.io.savemat(tmp_path / "mirflickr25k-fall.mat", {"FAll": np.array([f"im{i}.jpg" for i in range(N)],
                                                                           dtype=object)})
    assert detect_format(tmp_path) == "dcmh"
    ds = load_dataset(tmp_path)
    assert_same(ds, arrays)
    assert ds.name == tmp_path.name and ds.splits == {}


def test_dcmh_merged_v5_with_liberal_names_and_sparse_tags(tmp_path, arrays):
    path = tmp_path / "nus.mat"
    scipy.io.savemat(path, {"image": arrays["image"], "TAGS": scipy.sparse.csr_matrix(arrays["text"]),
                            "Labels": arrays["labels"], "param": {"indexTest": np.arange(3)}})
    ds = load_dataset(path, format="dcmh")
    assert_same(ds, arrays)


def test_dcmh_v73_merged_file_is_transposed_back(tmp_path, arrays):
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"IAll": arrays["image"].astype(np.float64), "YAll": scipy.sparse.csr_matrix(arrays["text"]),
                     "LAll": arrays["labels"].astype(np.float64)})
    with h5py.File(path, "r") as f:
        assert f["IAll"].shape == (DI, N)  # column-major on disk, as MATLAB writes it
    assert detect_format(path) == "dcmh"
    assert_same(load_dataset(path), arrays)


def test_dcmh_v73_separate_files(tmp_path, arrays):
    for name, key in (("iall", "IAll"), ("yall", "YAll"), ("lall", "LAll")):
        role = {"IAll": "image", "YAll": "text", "LAll": "labels"}[key]
        write_v73(tmp_path / f"nus-wide-tc21-{name}.mat", {key: arrays[role].astype(np.float64)})
    assert_same(load_dataset(tmp_path, format="dcmh"), arrays)


def test_dcmh_raw_images_are_refused_with_encode_hint(tmp_path, arrays):
    path = tmp_path / "raw.mat"
    write_v73(path, {"IAll": np.zeros((N, 3, 4, 4)), "YAll": arrays["text"], "LAll": arrays["labels"]})
    with pytest.raises(DataError, match=r"IAll.*raw images.*cmhash encode"):
        load_dataset(path)


def test_missing_variable(tmp_path, arrays):
    path = tmp_path / "d.mat"
    scipy.io.savemat(path, {"IAll": arrays["image"], "LAll": arrays["labels"]})
    with pytest.raises(DataError, match=r"d\.mat.*field 'text'.*missing variable.*YAll"):
        load_dataset(path)


def test_counts_differ_names_file_and_variable(tmp_path, arrays):
    scipy.io.savemat(tmp_path / "i.mat", {"IAll": arrays["image"]})
    scipy.io.savemat(tmp_path / "y.mat", {"YAll": arrays["text"][:-2]})
    scipy.io.savemat(tmp_path / "l.mat", {"LAll": arrays["labels"]})
    with pytest.raises(DataError, match=r"y\.mat.*field 'YAll'.*counts differ.*has 28"):
        load_dataset(tmp_path)


def test_counts_differ_hints_at_transposed_matrix(tmp_path, arrays):
    path = tmp_path / "d.mat"
    scipy.io.savemat(path, {"IAll": arrays["image"], "YAll": arrays["text"].T, "LAll": arrays["labels"]})
    with pytest.raises(DataError, match="stored transposed"):
        load_dataset(path)


def test_nan_names_file_and_variable(tmp_path, arrays):
    image = arrays["image"].copy()
    image[3, 1] = np.nan
    scipy.io.savemat(tmp_path / "i.mat", {"IAll": image})
    scipy.io.savemat(tmp_path / "y.mat", {"YAll": arrays["text"]})
    scipy.io.savemat(tmp_path / "l.mat", {"LAll": arrays["labels"]})
    with pytest.raises(DataError, match=r"i\.mat.*field 'IAll'.*NaN/Inf.*first row 3"):
        load_dataset(tmp_path)


def test_non_binary_labels(tmp_path, arrays):
    labels = arrays["labels"].astype(np.float64)
    labels[0, 0] = 2
    scipy.io.savemat(tmp_path / "d.mat", {"IAll": arrays["image"], "YAll": arrays["text"], "LAll": labels})
    with pytest.raises(DataError, match=r"field 'LAll'.*0/1.*\[2"):
        load_dataset(tmp_path / "d.mat")


def test_truncated_mat_v5(tmp_path, arrays):
    path = tmp_path / "d.mat"
    scipy.io.savemat(path, {"IAll": arrays["image"], "YAll": arrays["text"], "LAll": arrays["labels"]})
    path.write_bytes(path.read_bytes()[:700])
    with pytest.raises(DataError, match=r"d\.mat.*truncated: a variable ends at byte"):
        load_dataset(path)


def test_truncated_mat_v73(tmp_path, arrays):
    path = tmp_path / "d.mat"
    write_v73(path, {"IAll": arrays["image"], "YAll": arrays["text"], "LAll": arrays["labels"]})
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(DataError, match=r"d\.mat.*corrupt or truncated"):
        load_dataset(path, format="dcmh")


def test_corrupt_mat(tmp_path):
    path = tmp_path / "d.mat"
    path.write_bytes(b"this is not a MAT file at all" * 10)
    with pytest.raises(DataError, match=r"d\.mat.*corrupt or truncated"):
        load_dataset(path)


# ---- dchmt ---------------------------------------------------------------------------------

def test_dchmt_with_feature_matrices(tmp_path, arrays):
    scipy.io.savemat(tmp_path / "index.mat", {"index": arrays["image"]})
    scipy.io.savemat(tmp_path / "caption.mat", {"caption": arrays["text"]})
    scipy.io.savemat(tmp_path / "label.mat", {"category": arrays["labels"]})
    assert detect_format(tmp_path) == "dchmt"
    assert_same(load_dataset(tmp_path), arrays)


def test_dchmt_with_paths_and_captions_explains_encode(tmp_path, arrays):
    scipy.io.savemat(tmp_path / "index.mat", {"index": np.array([f"/data/im{i}.jpg" for i in range(N)])})
    scipy.io.savemat(tmp_path / "caption.mat", {"caption": np.array(["a dog on grass"] * N, dtype=object)})
    scipy.io.savemat(tmp_path / "label.mat", {"category": arrays["labels"]})
    with pytest.raises(DataError, match=r"index\.mat.*field 'index'.*holds text.*cmhash encode"):
        load_dataset(tmp_path)


def test_dchmt_v73_captions_as_char(tmp_path, arrays):
    scipy.io.savemat(tmp_path / "index.mat", {"index": arrays["image"]})
    write_v73(tmp_path / "caption.mat", {"caption": np.array(["a dog", "a cat"])})
    scipy.io.savemat(tmp_path / "label.mat", {"label": arrays["labels"]})
    with pytest.raises(DataError, match=r"caption\.mat.*holds text"):
        load_dataset(tmp_path, format="dchmt")


def test_dchmt_missing_file(tmp_path, arrays):
    scipy.io.savemat(tmp_path / "index.mat", {"index": arrays["image"]})
    scipy.io.savemat(tmp_path / "label.mat", {"category": arrays["labels"]})
    with pytest.raises(DataError, match="missing caption.mat"):
        load_dataset(tmp_path, format="dchmt")


# ---- pickle --------------------------------------------------------------------------------

def write_pickles(path: Path, arrays: dict[str, np.ndarray], parts: dict[str, slice], **extra) -> None:
    for fname, rows in parts.items():
        data = {"image": arrays["image"][rows].astype(np.float64), "text": arrays["text"][rows],
                "label": arrays["labels"][rows].astype(np.int64), "tag": np.zeros(3), **extra}
        (path / fname).write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))


def test_pickle_directory_gives_three_splits(tmp_path, arrays):
    parts = {"train.pkl": slice(10, 20), "query.pkl": slice(0, 5), "retrival.pkl": slice(5, 30)}
    write_pickles(tmp_path, arrays, parts)
    assert detect_format(tmp_path) == "pickle"
    ds = load_dataset(tmp_path)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 10, "query": 5, "database": 25}
    for split, rows in zip(("train", "query", "database"), parts.values()):
        assert_same(ds.split(split), arrays, rows)


def test_pickle_refuses_arbitrary_objects(tmp_path, arrays):
    write_pickles(tmp_path, arrays, {"train.pkl": slice(0, 5), "query.pkl": slice(0, 5),
                                     "retrieval.pkl": slice(0, 5)}, sneaky=Path("/etc"))
    with pytest.raises(DataError, match=r"train\.pkl.*refusing to load pathlib"):
        load_dataset(tmp_path, format="pickle")


def test_pickle_missing_file(tmp_path, arrays):
    write_pickles(tmp_path, arrays, {"train.pkl": slice(0, 5), "query.pkl": slice(0, 5)})
    with pytest.raises(DataError, match="missing retrieval.pkl"):
        load_dataset(tmp_path, format="pickle")


def test_pickle_truncated(tmp_path, arrays):
    write_pickles(tmp_path, arrays, {"train.pkl": slice(0, 9), "query.pkl": slice(0, 5),
                                     "retrieval.pkl": slice(0, 5)})
    path = tmp_path / "train.pkl"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"train\.pkl.*cannot unpickle"):
        load_dataset(tmp_path)


def test_pickle_missing_key(tmp_path, arrays):
    (tmp_path / "one.pkl").write_bytes(pickle.dumps({"image": arrays["image"], "label": arrays["labels"]}))
    with pytest.raises(DataError, match=r"one\.pkl.*missing variable: no text"):
        load_dataset(tmp_path / "one.pkl")


# ---- native --------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_native_round_trip_keeps_splits(tmp_path, arrays, suffix):
    ds = CrossModalDataset(arrays["image"], arrays["text"], arrays["labels"], name="toy",
                           splits={"query": np.arange(3), "database": np.arange(3, N)})
    save_dataset(ds, tmp_path / f"toy{suffix}")
    assert detect_format(tmp_path / f"toy{suffix}") == "native"
    back = load_dataset(tmp_path / f"toy{suffix}")
    assert_same(back, arrays)
    assert back.name == "toy" and {k: v.tolist() for k, v in back.splits.items()} == \
        {k: v.tolist() for k, v in ds.splits.items()}


def test_native_corrupt(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DataError, match=r"x\.npz.*corrupt or truncated"):
        load_dataset(tmp_path / "x.npz")


# ---- wiki-style split .mat -----------------------------------------------------------------

def test_split_mat_without_database_uses_training_as_database(tmp_path, arrays):
    mat = {f"{p}_{s}": arrays[role][rows] for p, role in (("I", "image"), ("T", "text"), ("L", "labels"))
           for s, rows in (("tr", slice(0, 20)), ("te", slice(20, 30)))}
    scipy.io.savemat(tmp_path / "wiki.mat", {**mat, "sampleInds": np.arange(1, 21)[None]})
    assert detect_format(tmp_path / "wiki.mat") == "wiki"
    ds = load_dataset(tmp_path / "wiki.mat")
    assert_same(ds, arrays)
    assert ds.splits["train"].tolist() == ds.splits["database"].tolist() == list(range(20))
    assert ds.splits["query"].tolist() == list(range(20, 30))


def test_split_mat_with_database_block(tmp_path, arrays):
    blocks = (("tr", slice(0, 8)), ("te", slice(8, 12)), ("db", slice(12, 30)))
    write_v73(tmp_path / "mir_cnn_twt.mat", {f"{p}_{s}": arrays[role][rows].astype(np.float64)
                                             for p, role in (("I", "image"), ("T", "text"), ("L", "labels"))
                                             for s, rows in blocks})
    ds = load_dataset(tmp_path / "mir_cnn_twt.mat")
    assert_same(ds, arrays)
    assert (len(ds.splits["train"]), len(ds.splits["query"]), len(ds.splits["database"])) == (8, 4, 18)
    assert ds.splits["database"][0] == 12


def test_split_mat_missing_label_block(tmp_path, arrays):
    scipy.io.savemat(tmp_path / "w.mat", {"I_tr": arrays["image"], "T_tr": arrays["text"], "L_tr": arrays["labels"],
                                          "I_te": arrays["image"], "T_te": arrays["text"]})
    with pytest.raises(DataError, match=r"field 'L_te'.*missing variable L_te"):
        load_dataset(tmp_path / "w.mat")


# ---- unlabeled items, dispatch -------------------------------------------------------------

def test_unlabeled_items_raise_by_default(tmp_path, arrays):
    labels = arrays["labels"].copy()
    labels[[2, 7, 9]] = 0
    scipy.io.savemat(tmp_path / "d.mat", {"IAll": arrays["image"], "YAll": arrays["text"], "LAll": labels})
    with pytest.raises(DataError, match=r"3 of 30 items have no label \(first at row 2\).*drop_unlabeled=True"):
        load_dataset(tmp_path / "d.mat")


def test_unlabeled_items_dropped_on_request_with_note_and_warning(tmp_path, arrays, caplog):
    labels = arrays["labels"].copy()
    labels[[2, 7, 9]] = 0
    parts = {"train.pkl": slice(0, 10), "query.pkl": slice(10, 15), "retrieval.pkl": slice(0, 30)}
    write_pickles(tmp_path, {**arrays, "labels": labels}, parts)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(tmp_path, drop_unlabeled=True)
    assert "dropped 6 of 45 items with no label" in caplog.text  # 3 in train.pkl, 3 in retrieval.pkl
    assert ds.notes == ["dropped 6 of 45 items with no label"]
    keep = np.setdiff1d(np.arange(30), [2, 7, 9])
    assert_same(ds.split("train"), arrays, np.setdiff1d(np.arange(10), [2, 7, 9]))
    assert_same(ds.split("query"), arrays, slice(10, 15))
    assert_same(ds.split("database"), arrays, keep)
    assert ds.labels.any(axis=1).all()
    assert ds.with_splits().notes == ds.notes  # notes travel with the dataset


def test_dataset_without_label_columns_is_not_unlabeled_items(tmp_path, arrays):
    ds = CrossModalDataset(arrays["image"], arrays["text"], np.zeros((N, 0), np.uint8))
    save_dataset(ds, tmp_path / "encoded.npz")
    assert load_dataset(tmp_path / "encoded.npz").num_labels == 0


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nope.mat")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="unknown dataset format 'csv'"):
        load_dataset(tmp_path / "x.txt", format="csv")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_dataset(tmp_path / "x.txt")


def test_label_names_round_trip_in_both_native_formats(tmp_path):
    from cmhash.data import load_native

    ds = CrossModalDataset(np.ones((3, 2)), np.ones((3, 4)), np.eye(3, dtype=np.uint8), label_names=["a", "b", "ç"])
    for suffix in (".npz", ".h5"):
        save_dataset(ds, tmp_path / f"d{suffix}")
        back = load_native(tmp_path / f"d{suffix}")
        assert back.label_names == ("a", "b", "ç")
        assert back.subset([0]).label_names == ("a", "b", "ç")
    with pytest.raises(DataError, match="label_names"):
        CrossModalDataset(np.ones((3, 2)), np.ones((3, 4)), np.eye(3, dtype=np.uint8), label_names=["a"])
