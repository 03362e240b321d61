"""MediaPipe's keypoints as COCO-WholeBody's 133: the data a spec's ``wholebody_keypoints`` holds.

The core (:mod:`posezoo.io.wholebody`) knows COCO-WholeBody's layout; which of a model's rows are which
of its keypoints is the plugin's knowledge, given here as ``(COCO-WholeBody name, (part, row))`` pairs:
``row`` is a row of the pose's named part (``Pose.parts``), so the same pairs serve a model whose pose is
one part (BlazePose: ``body``; a hand model: ``left_hand`` or ``right_hand``, decided per pose; a face
model: ``face``, 468 or 478 rows) and a whole-body model holding them all (body, hands, face), and a
part a pose lacks (not found, or the other hand) gives nothing.

- :data:`BLAZEPOSE_WHOLEBODY`: BlazePose's 33 -> body 17 (by name) + foot 4 of 6: ``foot_index`` (the
  tip of the foot) is the big toe, ``heel`` the heel. BlazePose has no small toe: ``left_small_toe``
  and ``right_small_toe`` are missing.
- :data:`HANDS_WHOLEBODY`: a hand's 21 -> 21, same order (MediaPipe's hand landmarks and COCO-WholeBody's
  hand keypoints both follow OpenPose: wrist, then thumb CMC, MCP, IP, tip, then the index, middle, ring
  and little finger, each MCP, PIP, DIP, tip), for the left and the right hand (the person's own).
- :data:`FACE_WHOLEBODY`: the face mesh's 468 (the 478 of the refined mesh start with them) -> the 68
  points of iBUG / 300-W (:data:`FACE_68`). The mesh has no point made to be each of the 68: the table
  takes, for each, the mesh vertex on the same feature (the face oval for the jaw line, the brows,
  the nose bridge and base, the eyelids and corners, the lip contours) that lies closest to 68-point
  ground truth, measured on real faces (docs/wholebody.md: a 300-VW frame annotated with the 68 points,
  and COCO-WholeBody's skier), and kept symmetric (each right-side choice mirrors its left one).
- :data:`HOLISTIC_WHOLEBODY`: all of them, for a model whose pose has the four parts.
"""

from __future__ import annotations

# BlazePose's 33 keypoints (rows of the ``body`` part): the ones COCO-WholeBody has
_BLAZEPOSE_ROWS: tuple[tuple[str, int], ...] = (
    ("nose", 0), ("left_eye", 2), ("right_eye", 5), ("left_ear", 7), ("right_ear", 8),
    ("left_shoulder", 11), ("right_shoulder", 12), ("left_elbow", 13), ("right_elbow", 14),
    ("left_wrist", 15), ("right_wrist", 16), ("left_hip", 23), ("right_hip", 24), ("left_knee", 25),
    ("right_knee", 26), ("left_ankle", 27), ("right_ankle", 28),
    ("left_big_toe", 31),  # left_foot_index
    ("left_heel", 29),  # left_heel
    ("right_big_toe", 32),  # right_foot_index
    ("right_heel", 30),  # right_heel
)  # fmt: skip

BLAZEPOSE_WHOLEBODY: tuple[tuple[str, tuple[str, int]], ...] = tuple((n, ("body", r)) for n, r in _BLAZEPOSE_ROWS)

_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand(side: str) -> tuple[tuple[str, tuple[str, int]], ...]:
    names = (f"{side}_hand_root",) + tuple(f"{side}_{finger}{i}" for finger in _FINGERS for i in range(1, 5))
    return tuple((name, (f"{side}_hand", row)) for row, name in enumerate(names))


HANDS_WHOLEBODY: tuple[tuple[str, tuple[str, int]], ...] = _hand("left") + _hand("right")

# The 68 iBUG / 300-W points as face mesh vertices ("right" is the person's right: the image's left).
FACE_68: tuple[int, ...] = (
    # 0-16 jaw line, from the right ear down to the chin (8) and up to the left ear: the face oval
    127, 234, 93, 132, 172, 136, 150, 176, 152, 400, 379, 365, 397, 361, 323, 454, 356,
    # 17-21 right brow, outer to inner; 22-26 left brow, inner to outer (the brows' lower contour)
    46, 53, 52, 65, 55, 285, 295, 282, 283, 276,
    # 27-30 nose bridge, top to tip; 31-35 the base of the nose, right to left
    168, 197, 5, 4, 240, 97, 2, 326, 460,
    # 36-41 right eye: outer corner, upper lid x2, inner corner, lower lid x2
    33, 159, 158, 133, 153, 144,
    # 42-47 left eye: inner corner, upper lid x2, outer corner, lower lid x2
    362, 385, 386, 263, 373, 380,
    # 48-59 outer lip: right corner, upper lip to the left corner (54), lower lip back
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lip: right corner, upper, left corner (64), lower
    78, 81, 13, 311, 308, 402, 14, 178,
)  # fmt: skip
assert len(FACE_68) == 68 and len(set(FACE_68)) == 68

FACE_WHOLEBODY: tuple[tuple[str, tuple[str, int]], ...] = tuple((f"face-{i}", ("face", v)) for i, v in enumerate(FACE_68))

HOLISTIC_WHOLEBODY: tuple[tuple[str, tuple[str, int]], ...] = BLAZEPOSE_WHOLEBODY + HANDS_WHOLEBODY + FACE_WHOLEBODY

__all__ = ["BLAZEPOSE_WHOLEBODY", "FACE_68", "FACE_WHOLEBODY", "HANDS_WHOLEBODY", "HOLISTIC_WHOLEBODY"]
