"""Render the pictures of docs/eval.md and docs/quickstart.md with the real models (run by hand; they are committed small).

    POSEZOO_MIRROR=... python docs/images/make_images.py

Every picture is of the bundled sample (COCO val2017 #785, CC BY 2.0, credit in posezoo/data/CREDITS.md);
the two-skier picture puts it beside its mirror image.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

import posezoo
from posezoo.io.draw import draw_poses
from posezoo.io.sources import sample_image_path
from posezoo.io.worldplot import write_world_plot

OUT = Path(__file__).resolve().parent
REPO = OUT.parent.parent
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 82]


def old_draw():
    """draw.py as it was before the readable style (for the before/after picture)."""
    source = subprocess.run(
        ["git", "show", "acfd57a:posezoo/draw.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_draw.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_draw", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.draw_poses


def main() -> None:
    model = posezoo.load("blazepose-full", "full")
    photo = cv2.imread(str(sample_image_path()))
    (pose,) = model.predict(photo)

    # 1. the new style, with the box
    cv2.imwrite(str(OUT / "skier_drawn.jpg"), draw_poses(photo, [pose], model.skeleton, boxes=True), JPEG)

    # 2. before / after on the upper body, 2x
    x0, y0, x1, y1 = 270, 40, 480, 250
    before = old_draw()(photo, [pose], model.skeleton)[y0:y1, x0:x1]
    after = draw_poses(photo, [pose], model.skeleton)[y0:y1, x0:x1]
    gap = np.full((y1 - y0, 6, 3), 255, np.uint8)
    pair = np.concatenate([before, gap, after], axis=1)
    cv2.imwrite(str(OUT / "skier_before_after.jpg"), cv2.resize(pair, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC), JPEG)

    # 3. two people, tracked (track ids on the boxes): the photo beside its mirror image
    skier = photo[:, 200:540]
    two = np.ascontiguousarray(np.concatenate([skier, skier[:, ::-1]], axis=1))
    tracker = model.tracker(max_poses=2)
    for i in range(3):
        poses = tracker.update(two, timestamp=i / 30)
    assert len(poses) == 2, len(poses)
    cv2.imwrite(str(OUT / "two_skiers_tracked.jpg"), draw_poses(two, poses, model.skeleton, boxes=True), JPEG)

    # 4. the same style for another family: MoveNet (17 COCO keypoints, x y score: no z, one point size)
    movenet = posezoo.load("movenet-thunder")
    x0, y0, x1, y1 = 260, 30, 540, 410
    crops = []
    for m, poses in ((model, [pose]), (movenet, movenet.predict(photo))):
        crop = draw_poses(photo, poses, m.skeleton, boxes=True)[y0:y1, x0:x1].copy()
        (tw, th), _ = cv2.getTextSize(m.name, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
        cv2.rectangle(crop, (x1 - x0 - tw - 14, 0), (x1 - x0, th + 12), (255, 255, 255), -1)
        cv2.putText(crop, m.name, (x1 - x0 - tw - 7, th + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (20, 20, 20), 1, cv2.LINE_AA)
        crops.append(crop)
    gap = np.full((y1 - y0, 6, 3), 255, np.uint8)
    cv2.imwrite(str(OUT / "skier_two_families.jpg"), np.concatenate([crops[0], gap, crops[1]], axis=1), JPEG)

    # 5. the world landmarks in 3D
    write_world_plot(OUT / "skier_world.png", pose, model.skeleton, title="blazepose-full (full): world landmarks (m)")
    # 6. a frame of a video saved by `posezoo run -v CLIP -s out.mp4` (H.264, no FPS overlay), read back with PyAV
    video_frame()
    print("\n".join(f"{p.name}: {p.stat().st_size // 1024} KB" for p in sorted(OUT.glob("*.*g"))))


def video_frame() -> None:
    import av

    from posezoo.drivers.bench import write_clip

    work = Path(tempfile.mkdtemp())
    clip = write_clip(work / "clip.avi", cv2.imread(str(sample_image_path())), 40)  # a pan-and-zoom over the sample
    subprocess.run([sys.executable, "-m", "posezoo", "run", "blazepose-full", "-v", str(clip), "-s", str(work / "out.mp4"),
                    "--no-display"], check=True)  # fmt: skip
    with av.open(str(work / "out.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        frame = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)][30]
    small = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(OUT / "video_frame.png"), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])


if __name__ == "__main__":
    sys.exit(main())
