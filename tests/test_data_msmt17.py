"""MSMT17 reader on tiny fixtures in the official V1 and V2 layouts: counts, cameras, relabelling, the val
list option, its errors, and the name in the CLI and the notebooks' parameters."""
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from data_fixtures import MSMT17_FOLDERS, make_msmt17, write_image
from sagkit.cli import main
from sagkit.data import DatasetFormatError, ImageDataset, load_dataset
from sagkit.evaluation.protocol import MARKET
from sagkit.workbook import check_parameters, open_workbook

# train ids 0000, 0002, 0005 -> 0, 1, 2; cameras 01..15 -> 0..14
TRAIN = Counter({(0, 0): 1, (0, 2): 1, (1, 1): 2, (1, 6): 1, (2, 14): 1, (2, 3): 1})
VAL = Counter({(1, 8): 1, (2, 10): 1})
QUERY = Counter({(0, 1): 1, (1, 4): 1, (3, 11): 1})
GALLERY = Counter({(0, 5): 1, (0, 1): 1, (1, 7): 1, (1, 9): 1, (3, 13): 1, (3, 11): 1, (4, 12): 1})


def _pid_cams(records):
    return Counter((r.pid, r.camid) for r in records)


def _edit_list(base: Path, split: str, line_number: int, text: str | None) -> Path:
    """Replace (or, with ``text=None``, delete) line ``line_number`` (1-based) of ``list_<split>.txt``."""
    path = base / f"list_{split}.txt"
    lines = path.read_text().splitlines()
    if text is None:
        del lines[line_number - 1]
    else:
        lines[line_number - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("version", ["V1", "V2"])
@pytest.mark.parametrize("nested", [True, False])
def test_counts_cameras_and_ids(version, nested, tmp_path):
    base = make_msmt17(tmp_path, version, nested=nested)
    ds = load_dataset("msmt17", tmp_path)
    assert ds.name == "msmt17" and ds.root == str(base) and ds.info == {"version": version, "include_val": False}
    # test id 0 is a person: counted among the test ids, not as a distractor
    assert ds.summary() == {"ids": 6, "images": 17, "cameras": 13, "train_ids": 3, "train_images": 7,
                            "test_ids": 3, "query_images": 3, "gallery_images": 7}
    ext = ds.summary(extended=True)
    assert (ext["gallery_ids"], ext["junk_images"], ext["distractor_images"]) == (4, 0, 0)
    assert _pid_cams(ds.train) == TRAIN and _pid_cams(ds.query) == QUERY and _pid_cams(ds.gallery) == GALLERY
    assert ds.num_train_pids == 3 and sorted({r.pid for r in ds.train}) == [0, 1, 2]
    train_dir, test_dir = MSMT17_FOLDERS[version]
    assert all(Path(r.path).parent.parent == base / train_dir for r in ds.train)
    assert all(Path(r.path).parent.parent == base / test_dir for r in ds.query + ds.gallery)
    assert ImageDataset(ds.gallery)[6][1:3] == (4, 12)  # the image loads; pid and camid come with it


def test_query_and_gallery_keep_the_list_ids_and_train_is_relabelled_in_id_order(tmp_path):
    make_msmt17(tmp_path)
    ds = load_dataset("msmt", tmp_path / "MSMT17_V1")  # alias, and root may be the dataset folder itself
    original = {int(Path(r.path).parent.name) for r in ds.train}
    assert original == {0, 2, 5}
    assert {int(Path(r.path).parent.name): r.pid for r in ds.train} == {0: 0, 2: 1, 5: 2}
    assert [(int(Path(r.path).parent.name), r.pid) for r in ds.query] == [(0, 0), (1, 1), (3, 3)]


def test_include_val_adds_the_val_list_to_train(tmp_path):
    make_msmt17(tmp_path)
    ds = load_dataset("msmt17", tmp_path, include_val=True)
    assert _pid_cams(ds.train) == TRAIN + VAL  # val images of 0002 and 0005 get the same labels as in train
    assert ds.summary()["train_images"] == 9 and ds.summary()["cameras"] == 15 and ds.num_train_pids == 3
    assert ds.info["include_val"] is True
    assert _pid_cams(ds.query) == QUERY and _pid_cams(ds.gallery) == GALLERY
    assert len(load_dataset("msmt17", tmp_path, include_val=False).train) == 7


def test_market_protocol(tmp_path):
    make_msmt17(tmp_path)
    assert load_dataset("msmt17", tmp_path).protocol == MARKET


def test_version_option_chooses_when_both_are_present(tmp_path):
    make_msmt17(tmp_path, "V1")
    make_msmt17(tmp_path, "V2")
    with pytest.raises(ValueError, match=r"both MSMT17 versions are under .*pass version='V1' or 'V2' "
                                         r"\(dataset_options\.version\)"):
        load_dataset("msmt17", tmp_path)
    assert load_dataset("msmt17", tmp_path, version="v2").info["version"] == "V2"
    assert load_dataset("msmt17", tmp_path, version="V1").root == str(tmp_path / "MSMT17_V1")


@pytest.mark.parametrize("options, message", [
    ({"include_val": "yes"}, "include_val must be True or False, got 'yes'"),
    ({"version": "V3"}, "version must be 'V1', 'V2' or None"),
    ({"split": 1}, r"unknown msmt17 option\(s\) \['split'\].*accepts \['include_val', 'version'\]"),
])
def test_bad_options(options, message, tmp_path):
    make_msmt17(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_dataset("msmt17", tmp_path, **options)


# ---------------------------------------------------------------- errors
def test_missing_root_shows_the_layout(tmp_path):
    root = tmp_path / "no such folder"
    pattern = "(?s)" + re.escape(repr(str(root))) + r" not found.*Expected layout:.*mask_train_v2.*Pass the folder"
    with pytest.raises(FileNotFoundError, match=pattern):
        load_dataset("msmt17", root)
    assert not root.exists()


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "msmt.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"MSMT17 root .*msmt\.txt' is a file, not a folder"):
        load_dataset("msmt17", tmp_path / "msmt.txt")


def test_folder_without_msmt17(tmp_path):
    write_image(tmp_path / "something" / "a.jpg")
    with pytest.raises(FileNotFoundError, match=r"The MSMT17 image folders not found under .*Expected layout"):
        load_dataset("msmt17", tmp_path)


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_missing_image_folder_is_named(version, tmp_path):
    base = make_msmt17(tmp_path, version, nested=False)
    test_dir = MSMT17_FOLDERS[version][1]
    (base / test_dir).rename(base / "elsewhere")
    with pytest.raises(FileNotFoundError, match=rf"Folder\(s\) {test_dir} not found under .*Expected layout"):
        load_dataset("msmt17", base)


@pytest.mark.parametrize("split", ["train", "query", "gallery"])
def test_missing_list_file_is_named(split, tmp_path):
    base = make_msmt17(tmp_path)
    (base / f"list_{split}.txt").unlink()
    with pytest.raises(FileNotFoundError, match=rf"List file\(s\) list_{split}\.txt not found under "
                                                rf"{re.escape(repr(str(base)))}.*Expected layout"):
        load_dataset("msmt17", tmp_path)


def test_val_list_is_needed_only_with_include_val(tmp_path):
    base = make_msmt17(tmp_path)
    (base / "list_val.txt").unlink()
    assert len(load_dataset("msmt17", tmp_path).train) == 7
    with pytest.raises(FileNotFoundError, match=r"list_val\.txt \(list_val\.txt is read because include_val=True\)"):
        load_dataset("msmt17", tmp_path, include_val=True)


@pytest.mark.parametrize("split, line", [("train", 3), ("val", 2), ("query", 1), ("gallery", 7)])
def test_line_naming_a_missing_image(split, line, tmp_path):
    base = make_msmt17(tmp_path)
    rel = (base / f"list_{split}.txt").read_text().splitlines()[line - 1].split()[0]
    folder = MSMT17_FOLDERS["V1"][0 if split in ("train", "val") else 1]
    (base / folder / rel).unlink()
    with pytest.raises(DatasetFormatError, match=rf"1 line\(s\) of {re.escape(repr(str(base / f'list_{split}.txt')))}"
                                                 rf" name images missing from {re.escape(repr(str(base / folder)))}: "
                                                 rf"line {line} {re.escape(repr(rel))}\. Restore the images"):
        load_dataset("msmt17", tmp_path, include_val=True)


def test_link_to_a_missing_image_is_a_missing_image(tmp_path):
    base = make_msmt17(tmp_path)
    rel = (base / "list_gallery.txt").read_text().split()[0]
    image = base / "test" / rel
    image.unlink()
    image.symlink_to(tmp_path / "deleted.jpg")
    with pytest.raises(DatasetFormatError, match=rf"name images missing from .*: line 1 {re.escape(repr(rel))}"):
        load_dataset("msmt17", tmp_path)


def test_root_with_spaces_and_non_ascii_characters(tmp_path):
    root = tmp_path / "mes données" / "行人 再识别"
    make_msmt17(root, "V2")
    ds = load_dataset("msmt17", root)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (7, 3, 7)
    assert ImageDataset(ds.query)[0][0].mode == "RGB"


BAD_LINES = {
    "no person id": ("0000/0000_000_01_0113morning_0100_0.jpg", "got 1 field"),
    "three fields": ("0000/0000_000_01_0113morning_0100_0.jpg 0 extra", "got 3 field"),
    "person id not an integer": ("0000/0000_000_01_0113morning_0100_0.jpg zero", "person id 'zero' is not"),
    "negative person id": ("0000/0000_000_01_0113morning_0100_0.jpg -1", "person id '-1' is not"),
    "no pid folder": ("0000_000_01_0113morning_0100_0.jpg 0", "is not <pid folder>/<file name>"),
    "market name": ("0000/0000_c1s1_000451_03.jpg 0", "does not follow PPPP_III_CC"),
    "not an image": ("0000/0000_000_01_0113morning_0100_0.txt 0", "does not follow PPPP_III_CC"),
    "camera 00": ("0000/0000_000_00_0113morning_0100_0.jpg 0", "camera 00 is outside 01-15"),
    "camera 16": ("0000/0000_000_16_0113morning_0100_0.jpg 0", "camera 16 is outside 01-15"),
    "person id differs from the name": ("0000/0000_000_01_0113morning_0100_0.jpg 7", "and person id 7 disagree"),
    "folder differs from the name": ("0003/0000_000_01_0113morning_0100_0.jpg 0", "folder '0003', file name"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_malformed_line_names_the_file_the_line_and_the_fault(case, tmp_path):
    text, reason = BAD_LINES[case]
    list_path = _edit_list(make_msmt17(tmp_path), "query", 2, text)
    with pytest.raises(DatasetFormatError) as err:
        load_dataset("msmt17", tmp_path)
    message = str(err.value)
    assert message.startswith(f"1 line(s) of {str(list_path)!r} do not follow '<pid folder>/<file name> <pid>'")
    assert f"line 2 {text!r}: " in message and reason in message and "Fix or remove them" in message


def test_several_malformed_lines_are_listed_with_their_numbers(tmp_path):
    base = make_msmt17(tmp_path)
    for number in (1, 4, 6):
        _edit_list(base, "gallery", number, f"garbage{number}")
    with pytest.raises(DatasetFormatError, match=r"3 line\(s\) of .*list_gallery\.txt.*line 1 'garbage1'.*"
                                                 r"line 4 'garbage4'.*line 6 'garbage6'"):
        load_dataset("msmt17", tmp_path)


def test_blank_lines_and_crlf_endings_are_accepted(tmp_path):
    base = make_msmt17(tmp_path)
    path = base / "list_query.txt"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n") + b"\r\n\r\n")
    assert _pid_cams(load_dataset("msmt17", tmp_path).query) == QUERY


def test_list_that_is_not_text(tmp_path):
    base = make_msmt17(tmp_path)
    (base / "list_train.txt").write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(DatasetFormatError, match=r"list_train\.txt' is not a text file .*restore the official list"):
        load_dataset("msmt17", tmp_path)


@pytest.mark.parametrize("split", ["train", "query", "gallery"])
def test_empty_list_is_an_empty_split(split, tmp_path):
    base = make_msmt17(tmp_path)
    (base / f"list_{split}.txt").write_text("")
    with pytest.raises(DatasetFormatError, match=rf"The {split} split is empty \(.*list_{split}\.txt\)"):
        load_dataset("msmt17", tmp_path)


# ---------------------------------------------------------------- the name in the CLI and the notebooks
def test_notebook_dataset_parameter_and_table2_row(tmp_path):
    make_msmt17(tmp_path / "data")
    assert check_parameters(dataset="msmt17", data_root=str(tmp_path / "data")).figures_dir.name == "msmt17"
    wb = open_workbook(dataset="msmt17", data_root=str(tmp_path / "data"), profile="tiny",
                       runs_dir=str(tmp_path / "runs"), figures_dir=str(tmp_path / "figures"),
                       overrides={"dataset_options": {"include_val": True}})
    table = wb.table2()
    measured = table.iloc[0]
    assert (measured["dataset"], measured["source"], measured["ids"], measured["train_images"],
            measured["cameras"]) == ("msmt17", "measured", 6, 9, 15)
    assert measured["note"] == "include_val=True, version=V1"
    assert set(table["source"][1:]) == {"reported"} and "msmt17" not in set(table["dataset"][1:])  # paper: none


def test_cli_routes_msmt17_to_its_reader(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["train", "--profile", "tiny", "--dataset", "msmt17", "--data-root", str(missing), "--device",
                 "cpu", "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"sagkit train: error: msmt17 dataset folder {str(missing)!r} not found")
    assert "mask_train_v2" in err


@pytest.mark.usefixtures("one_thread")
def test_cli_trains_one_batch_on_msmt17_with_the_val_list(tmp_path, capsys):
    make_msmt17(tmp_path / "data")
    runs = tmp_path / "runs"
    assert main(["train", "--profile", "tiny", "--dataset", "msmt17", "--data-root", str(tmp_path / "data"),
                 "--depths", "baseline", "--epochs", "1", "--set", "max_train_batches=1", "--set", "val_ids=0",
                 "--set", "pretrained=null", "--set", "dataset_options.include_val=true", "--device", "cpu",
                 "--runs-dir", str(runs), "--no-progress"]) == 0
    (run,) = runs.iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "msmt17" and config["dataset_options"] == {"include_val": True}
    assert "R1 " in capsys.readouterr().out
