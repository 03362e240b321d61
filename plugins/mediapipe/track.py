"""Video tracking: the two-stage family's video loop (:class:`Tracker`).

It is the core's generic top-down tracker (:class:`posezoo.inference.regions.TopDownTracker`) with the
detector and the landmark model as its region detector and region model
(:mod:`posezoo_plugins.mediapipe.regions`) and MediaPipe's landmark filters
(:mod:`posezoo_plugins.mediapipe.smoothing`) per track. It mirrors MediaPipe's video graph
(modules/pose_landmark/pose_landmark_cpu.pbtxt with ``static_image_mode`` off):

* The detector runs only when no ROI is held (first frame, or the pose flag fell under the
  threshold). Otherwise the landmark model runs on the ROI taken from the previous frame's
  **smoothed auxiliary landmarks** (pose_landmarks_to_roi.pbtxt: the same alignment, rotation,
  scale and square_long rule as from a detection).
* Landmarks are smoothed (pose_landmark_filtering.pbtxt): image landmarks with a one-euro filter
  whose speed is measured in object scales per second (object scale = mean of the width and height,
  in pixels, of the alignment rect of the raw auxiliary landmarks), world landmarks with an unscaled
  one-euro filter, auxiliary landmarks with a slower one-euro filter (also scaled by the object
  scale, MediaPipe's default), visibilities with a low-pass filter. Filters reset when a track is
  lost.

Three choices differ from MediaPipe's single-person graph:

* When the tracked ROI loses the pose, the detector runs on **the same frame** (MediaPipe waits for
  the next one), so a scene cut to another person costs no empty frame.
* Several people (``max_poses > 1``): one ROI per tracked person. The detector runs when no one is
  held, when any track was lost this frame, and otherwise every ``redetect_every`` frames while
  fewer than ``max_poses`` are held (to pick up people who walk in). A detection whose ROI overlaps
  a held track's ROI (IoU of their bounding squares > ``overlap``) is the same person and is
  skipped; when two tracks converge on one person the older one stays. Poses come in track order
  (people held from earlier frames first, in the same order every frame; new ones after them, best
  detection first), so ``poses[i]`` stays the same person while tracked. With ``max_poses == 1``
  this reduces to MediaPipe's rule.
* When the detector runs, its detections are tried best first until the free slots are filled,
  with one spare try: MediaPipe tries only the best one, so a false best detection costs it the
  frame.
"""

from __future__ import annotations

from posezoo.inference.regions import MIN_REGION_SIDE, TopDownTracker
from posezoo.inference.tracking import DEFAULT_FPS
from posezoo_plugins.mediapipe.regions import DetectorRegions, LandmarkRegions
from posezoo_plugins.mediapipe.smoothing import MIN_OBJECT_SCALE, PoseSmoother, bare_rule, object_scale
from posezoo_plugins.mediapipe.spec import MediaPipeOptions

__all__ = ["MIN_OBJECT_SCALE", "MIN_ROI_SIDE", "PoseSmoother", "Tracker", "bare_rule", "object_scale"]

MIN_ROI_SIDE = MIN_REGION_SIDE  # pixels; a smaller tracking ROI cannot hold a pose


class Tracker(TopDownTracker):
    """Tracks poses over video frames with a :class:`posezoo_plugins.mediapipe.model.PoseEstimator` (or
    any object with its stage methods: ``spec``, ``to_rgb``, ``detect_rgb``, ``roi_from_detection``,
    ``landmarks_in_roi``, ``make_pose``, ``roi_from_landmarks``): the two-stage family's
    :class:`posezoo.inference.model.PoseTracker`. Each person keeps a ``track_id`` while held; a person
    found again after being lost gets a new one.

    ``update(frame_bgr, timestamp=None) -> list[Pose]``; ``timestamp`` in seconds (default: the frame
    count at ``fps``). ``reset()`` forgets every track (the next update runs the detector).
    ``detector_runs`` and ``landmark_runs`` count model runs; ``frames`` counts updates.
    """

    def __init__(
        self,
        estimator,
        *,
        max_poses: int = 1,
        threshold: float | None = None,
        segmentation: bool = False,
        smooth: bool = True,
        redetect_every: int = 15,
        overlap: float = 0.5,
        fps: float = DEFAULT_FPS,
        sampling: str | None = None,
    ):
        self.estimator = estimator
        self.segmentation = segmentation
        self.sampling = sampling
        super().__init__(
            DetectorRegions(estimator),
            LandmarkRegions(estimator),
            max_poses=max_poses,
            threshold=threshold,
            options=MediaPipeOptions(
                segmentation=segmentation, redetect_every=redetect_every, overlap=overlap, fps=fps, sampling=sampling
            ),
            smooth=smooth,
            redetect_every=redetect_every,
            overlap=overlap,
            fps=fps,
            to_rgb=estimator.to_rgb,
        )

    def update(self, frame_bgr, timestamp: float | None = None):
        """Poses on the next frame, the crops sampled as the ``sampling`` option says."""
        from posezoo_plugins.mediapipe.model import crop_sampling

        with crop_sampling(getattr(self.estimator, "crop_stages", ()), self.sampling):
            return super().update(frame_bgr, timestamp)

    @property
    def landmark_runs(self) -> int:
        """Landmark-model runs so far (the generic tracker's ``region_runs``)."""
        return self.region_runs
