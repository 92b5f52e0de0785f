"""Remove camera motion from clips, as VGAN's preprocessing does (Vondrick et al. 2016,
cvondrick/videogan ``extra/stabilize_videos_many.py``).

For each consecutive frame pair: SIFT keypoints, FLANN kd-tree matching (5 trees, 50 checks),
Lowe's ratio test at 0.7, at least 10 matches, then a RANSAC homography (5 px). Composing
them maps every frame into the first frame's coordinates; pixels the warp does not cover are
filled from the previous stabilized frame. A clip is dropped when matching fails or the warp
leaves too much of the frame uncovered (the paper drops about 3% of segments).
"""

from __future__ import annotations

import cv2
import numpy as np

RATIO = 0.7
MIN_MATCHES = 10
RANSAC_PIXELS = 5.0
FLANN_KDTREE = 1
SKIP_FIRST_FRAMES = 2  # the released script skips each video's first two frames

Features = tuple[np.ndarray, np.ndarray | None]  # keypoint coordinates [N, 2], descriptors


class Stabilizer:
    """SIFT + FLANN + RANSAC homographies between consecutive frames."""

    def __init__(self, min_coverage: float = 0.5) -> None:
        self.sift = cv2.SIFT_create()
        self.matcher = cv2.FlannBasedMatcher(
            {"algorithm": FLANN_KDTREE, "trees": 5}, {"checks": 50}
        )
        self.min_coverage = min_coverage

    def features(self, frame: np.ndarray) -> Features:
        """RGB frame [H, W, 3] -> keypoint coordinates [N, 2] and SIFT descriptors [N, 128]."""
        keypoints, descriptors = self.sift.detectAndCompute(
            cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), None
        )
        return np.float32([k.pt for k in keypoints]), descriptors

    def homography(self, source: Features, target: Features) -> np.ndarray | None:
        """3x3 H taking source pixel coordinates to target ones, or None if matching fails."""
        (src_pts, src_desc), (dst_pts, dst_desc) = source, target
        if src_desc is None or dst_desc is None or len(src_desc) < 2 or len(dst_desc) < 2:
            return None
        pairs = self.matcher.knnMatch(src_desc, dst_desc, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
        if len(good) < MIN_MATCHES:
            return None
        src = src_pts[[m.queryIdx for m in good]]
        dst = dst_pts[[m.trainIdx for m in good]]
        matrix, _ = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PIXELS)
        return matrix

    def stabilize(self, frames: np.ndarray) -> np.ndarray | None:
        """uint8 RGB clip [T, H, W, 3] -> the clip in frame 0's coordinates, or None."""
        h, w = frames.shape[1:3]
        out = [frames[0]]
        to_first = np.eye(3)
        previous = self.features(frames[0])
        for frame in frames[1:]:
            current = self.features(frame)
            step = self.homography(current, previous)
            if step is None:
                return None
            to_first = to_first @ step
            warped = cv2.warpPerspective(frame, to_first, (w, h), flags=cv2.INTER_LINEAR)
            covered = cv2.warpPerspective(
                np.ones((h, w), np.uint8), to_first, (w, h), flags=cv2.INTER_NEAREST
            ).astype(bool)
            if covered.mean() < self.min_coverage:
                return None
            out.append(np.where(covered[..., None], warped, out[-1]))
            previous = current
        return np.stack(out)

    def clips(self, video: np.ndarray, clip_frames: int) -> tuple[list[np.ndarray], int]:
        """Cut ``video`` [T, H, W, 3] into consecutive clips of ``clip_frames`` (after the
        first two frames) and stabilize each; returns the kept clips and the dropped count."""
        video = video[SKIP_FIRST_FRAMES:]
        kept, dropped = [], 0
        for start in range(0, len(video) - clip_frames + 1, clip_frames):
            clip = self.stabilize(video[start : start + clip_frames])
            if clip is None:
                dropped += 1
            else:
                kept.append(clip)
        return kept, dropped
