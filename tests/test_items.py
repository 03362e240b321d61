"""Work items of runs over many inputs: listing (local and pyarrow.fs URIs), names below the common
folder, units (videos whole, images in chunks), and the output plan of ``posezoo run``. Real files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from posezoo.errors import InputError
from posezoo.io.items import Item, ItemReader, local_items, make_units, uri_items


@pytest.fixture
def tree(tmp_path) -> Path:
    """data/a/{x.jpg, y.png, notes.txt, .hidden.jpg, sub/z.jpg}, data/b/{x.jpg}, data/v/{c.avi}."""
    img = np.full((48, 64, 3), 127, np.uint8)
    root = tmp_path / "data"
    for rel in ("a/x.jpg", "a/y.png", "a/.hidden.jpg", "a/sub/z.jpg", "b/x.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), img)
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "v").mkdir()
    writer = cv2.VideoWriter(str(root / "v" / "c.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(7):
        writer.write(img)
    writer.release()
    return root


def test_local_items_recurse_sort_and_name_below_the_common_folder(tree):
    items = local_items([tree / "a", tree / "b"], [tree / "v"])
    assert [i.rel for i in items] == ["a/sub/z.jpg", "a/x.jpg", "a/y.png", "b/x.jpg", "v/c.avi"]
    assert [i.kind for i in items] == ["image"] * 4 + ["video"]
    assert items[-1].frames == 7 and items[0].frames == 1
    assert items[1].source == str(tree / "a" / "x.jpg")  # as given: records name inputs as the user did
    one = local_items([tree / "a" / "x.jpg"])
    assert one == [Item(str(tree / "a" / "x.jpg"), "image", "x.jpg")]


def test_local_items_refuse_missing_inputs_and_empty_folders(tree):
    with pytest.raises(InputError, match="does not exist"):
        local_items([tree / "nope"])
    with pytest.raises(InputError, match="holds no video files"):
        local_items([], [tree / "b"])


def test_uri_items_list_file_uris_like_local_folders(tree):
    items = uri_items([f"file://{tree}"])
    assert [i.rel for i in items] == ["a/sub/z.jpg", "a/x.jpg", "a/y.png", "b/x.jpg", "v/c.avi"]
    assert all(i.source.startswith("file://") and i.is_remote for i in items)
    local = uri_items([str(tree / "a")])
    assert [Path(i.source) for i in local] == [tree / "a" / "sub" / "z.jpg", tree / "a" / "x.jpg", tree / "a" / "y.png"]
    with pytest.raises(InputError, match="neither an image nor a video"):
        uri_items([str(tree / "a" / "notes.txt")])


def test_units_keep_videos_whole_and_chunk_images(tree):
    items = local_items([tree / "a", tree / "b"], [tree / "v"])
    units = make_units(items, workers=2, chunk=3)
    assert [[i.rel for i in u] for u in units] == [["a/sub/z.jpg", "a/x.jpg", "a/y.png"], ["b/x.jpg"], ["v/c.avi"]]
    many = [Item(f"{n}.jpg", "image", f"{n}.jpg") for n in range(1000)]
    sizes = [len(u) for u in make_units(many, workers=2)]
    assert sum(sizes) == 1000 and max(sizes) == 32  # chunks of at most 32 images
    assert len(make_units(many[:64], workers=2)) == 32  # small sets: about 16 chunks per worker


def test_reader_gives_every_frame_of_a_remote_video_and_cleans_up(tree):
    (item,) = [i for i in uri_items([f"file://{tree / 'v'}"])]
    with ItemReader(item) as reader:
        tmp = Path(reader._tmpdir)
        frames = list(reader)
        assert tmp.is_dir() and reader.size == (64, 48) and reader.fps == pytest.approx(10)
    assert [f.index for f in frames] == list(range(7)) and frames[0].source == item.source
    assert not tmp.exists()
    bad = Item(f"file://{tree / 'a' / 'notes.txt'}", "video", "notes.txt")
    with pytest.raises(InputError, match="notes.txt"), ItemReader(bad):
        pass
