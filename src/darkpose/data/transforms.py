"""The top-down transform: augmentation, affine crop, normalisation and heatmap targets.

One class serves training (``train=True``: half-body, random scale, rotation, flip,
optional colour jitter) and test time (``train=False``: the plain crop). Both return::

    {"image": (3, H, W) float32 tensor, normalised with the ImageNet mean/std,
     "target": (K, h, w) float32 tensor,          # when config.targets == "sample"
     "target_weight": (K,) float32 tensor,        # when config.targets == "sample"
     "meta": {...}}                               # see TopDownTransform.__call__

With ``targets="batch"`` the targets are made by :meth:`TopDownTransform.collate` (give it
to the DataLoader as ``collate_fn``): one codec call per batch instead of one per sample,
the same heatmaps, a fraction of the cost (the codec's per-call overhead is several times
the work of encoding one person).

Choices that make it fast and exact:

- the flip is folded into the crop affine (crop(flip(image)) = (crop o flip)(image)), so the
  full photo is never mirrored or copied, only the small output is sampled;
- the photo stays BGR as decoded; channels are reordered on the crop while normalising;
- keypoints reach heatmap space through the heatmap-space affine (the same crop with
  output size = heatmap size), not by dividing by the stride and rounding; targets come
  from :func:`darkpose.codec.encode`;
- all random numbers come from the generator passed in (see
  :class:`darkpose.data.base.TopDownDataset`), a fixed number of draws per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from darkpose import geometry
from darkpose.codec import encode
from darkpose.data.keypoint_metadata import KeypointMetadata, load_metadata

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet mean in R, G, B order (applied to the right channels whatever the output order)."""
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_sigma(image_size: tuple[int, int]) -> float:
    """Target sigma of the official configs: H / 128 (1 at 128x96, 2 at 256x192 and
    256x256, 3 at 384x288; DESIGN.md section 2). ``image_size`` is (W, H)."""
    return image_size[1] / 128.0


def default_blur_kernel(image_size: tuple[int, int]) -> int:
    """DARK decode blur kernel of the official configs: 3 at 128x96, 11 otherwise."""
    return 3 if image_size[1] <= 128 else 11


@dataclass(frozen=True)
class TransformConfig:
    """Settings of :class:`TopDownTransform` (defaults: the official COCO 256x192 recipe).

    Attributes
    ----------
    image_size : (W, H) of the network input
    heatmap_size : (W, H) of the heatmaps; default ``image_size // 4``
    sigma : target Gaussian sigma in heatmap pixels; default :func:`default_sigma`
    convention : {"darkpose", "hrnet"} (see :mod:`darkpose.geometry`)
    encode_method : {"unbiased", "quantized"}, passed to :func:`darkpose.codec.encode`
    targets : {"sample", "batch", "none"}
        "sample": each sample carries "target" and "target_weight"; "batch": they are
        encoded once per batch by :meth:`TopDownTransform.collate` (the same values);
        "none": no targets. ``True``/``False`` mean "sample"/"none".
    flip_prob, scale_factor, rotation_factor, rotation_prob, half_body_prob,
    half_body_min_keypoints : training augmentation (DESIGN.md section 4): flip with
        probability 0.5; scale x clip(1 + 0.35 z, 0.65, 1.35); rotation
        clip(45 z, -90, 90) degrees with probability 0.6; half-body with probability
        0.3 when more than 8 keypoints are labelled
    half_body_upper_prob : probability of trying the upper body first (0.5; the reference's
        ``np.random.randn() < 0.5`` makes it P(Z < 0.5) = 0.6915)
    color_jitter : brightness, contrast and saturation factors drawn uniformly in
        [1 - j, 1 + j] (0 disables; not in the official recipe)
    use_joint_weights : multiply target weights by the metadata's joint weights (the
        official ``LOSS.USE_DIFFERENT_JOINTS_WEIGHT``, False in every official config)
    mean, std : normalisation, in R, G, B order
    """

    image_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] | None = None
    sigma: float | None = None
    convention: str = "darkpose"
    encode_method: str = "unbiased"
    targets: str | bool = "sample"
    flip_prob: float = 0.5
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    half_body_upper_prob: float = 0.5
    color_jitter: float = 0.0
    use_joint_weights: bool = False
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        if len(self.image_size) != 2 or min(self.image_size) < 2:
            raise ValueError(f"image_size must be (W, H) >= 2, got {self.image_size!r}")
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        if self.heatmap_size is None:
            object.__setattr__(
                self, "heatmap_size", (self.image_size[0] // 4, self.image_size[1] // 4)
            )
        if len(self.heatmap_size) != 2 or min(self.heatmap_size) < 1:
            raise ValueError(f"heatmap_size must be (W, H) >= 1, got {self.heatmap_size!r}")
        object.__setattr__(self, "heatmap_size", tuple(int(v) for v in self.heatmap_size))
        if self.targets is True or self.targets is False:
            object.__setattr__(self, "targets", "sample" if self.targets else "none")
        if self.targets not in ("sample", "batch", "none"):
            raise ValueError(f"targets must be 'sample', 'batch' or 'none', got {self.targets!r}")
        if self.sigma is None:
            object.__setattr__(self, "sigma", default_sigma(self.image_size))
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if self.convention not in geometry.CONVENTIONS:
            raise ValueError(
                f"convention must be one of {geometry.CONVENTIONS}, got {self.convention!r}"
            )
        for name in ("flip_prob", "rotation_prob", "half_body_prob", "half_body_upper_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in [0, 1), got {self.scale_factor}")
        if not 0.0 <= self.color_jitter < 1.0:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")

    @property
    def aspect_ratio(self) -> float:
        return self.image_size[0] / self.image_size[1]


def _invert(affine: np.ndarray) -> np.ndarray:
    """Inverse of one (2, 3) affine with scalars (cf. :func:`darkpose.geometry.invert_affine`)."""
    (a, b, tx), (c, d, ty) = affine.tolist()
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return np.array([[ia, ib, -(ia * tx + ib * ty)], [ic, id_, -(ic * tx + id_ * ty)]])


class TopDownTransform:
    """Make a training sample (``train=True``) or a test-time sample from a person instance.

    Parameters
    ----------
    config : TransformConfig
    metadata : KeypointMetadata or its name/path (flip pairs, half-body split, joint weights)
    train : bool
        Augment (training) or crop only (test time).
    """

    def __init__(
        self,
        config: TransformConfig | None = None,
        metadata: KeypointMetadata | str = "coco",
        train: bool = True,
    ) -> None:
        self.config = config or TransformConfig()
        self.metadata = load_metadata(metadata)
        self.train = bool(train)
        self._flip_index = self.metadata.flip_index()
        upper = np.zeros(self.metadata.num_keypoints, dtype=bool)
        upper[list(self.metadata.upper_body_ids)] = True
        self._upper = upper
        cfg = self.config
        mean = np.asarray(cfg.mean, dtype=np.float64)
        std = np.asarray(cfg.std, dtype=np.float64)
        # out = (pixel / 255 - mean) / std = pixel * a + b, per R, G, B.
        self._a_rgb = (1.0 / (255.0 * std)).astype(np.float32)
        self._b_rgb = (-mean / std).astype(np.float32)

    # -- augmentation -------------------------------------------------------------------

    def _half_body(
        self, keypoints: np.ndarray, labelled: np.ndarray, u_side: float
    ) -> tuple[np.ndarray, np.ndarray] | None:
        upper = keypoints[labelled & self._upper, :2]
        lower = keypoints[labelled & ~self._upper, :2]
        if u_side < self.config.half_body_upper_prob and len(upper) > 2:
            chosen = upper
        else:
            chosen = lower if len(lower) > 2 else upper
        if len(chosen) < 2:
            return None
        center = chosen.mean(axis=0)
        extra = 1.0 if self.config.convention == "darkpose" else 0.0
        w, h = chosen.max(axis=0) - chosen.min(axis=0) + extra
        ar = self.config.aspect_ratio
        if w > ar * h:
            h = w / ar
        elif w < ar * h:
            w = h * ar
        return center, np.array([w, h]) / geometry.PIXEL_STD * 1.5

    def draw(
        self, keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray, rng
    ) -> tuple[np.ndarray, np.ndarray, float, bool, tuple[float, float, float] | None]:
        """Draw one sample's augmentation.

        ``rng`` is a numpy Generator, or the nine numbers already drawn (seven uniform in
        [0, 1), two standard normal; :meth:`TopDownDataset.draws`). A sample always uses
        all nine, so its parameters do not depend on which branches are taken.

        Returns
        -------
        center (2,), scale (2,), rotation (degrees), flipped, jitter (3,) factors (None
        when ``color_jitter`` is 0)
        """
        cfg = self.config
        if isinstance(rng, np.random.Generator):
            u = rng.random(7).tolist()
            z0, z1 = rng.standard_normal(2).tolist()
        else:
            *u, z0, z1 = np.asarray(rng, dtype=np.float64).tolist()
        jit = None
        if cfg.color_jitter:
            jit = tuple(1.0 + cfg.color_jitter * (2.0 * v - 1.0) for v in u[4:])
        if cfg.half_body_prob > 0 and u[0] < cfg.half_body_prob:
            labelled = keypoints[:, 2] > 0
            if labelled.sum() > cfg.half_body_min_keypoints:
                hb = self._half_body(keypoints, labelled, u[1])
                if hb is not None:
                    center, scale = hb
        sf, rf = cfg.scale_factor, cfg.rotation_factor
        scale = scale * min(max(z0 * sf + 1.0, 1.0 - sf), 1.0 + sf)
        rotation = min(max(z1 * rf, -2.0 * rf), 2.0 * rf) if u[2] < cfg.rotation_prob else 0.0
        flipped = u[3] < cfg.flip_prob
        return np.asarray(center, np.float64), np.asarray(scale, np.float64), rotation, flipped, jit

    def affines(
        self,
        center: np.ndarray,
        scale: np.ndarray,
        rotation: float,
        flipped: bool,
        image_width: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image -> input crop and image -> heatmap affines (2, 3), the flip folded in.

        A flip mirrors the photo (x' = width - 1 - x, as the reference) before the crop,
        whose centre is mirrored with it. The same matrices as
        :func:`darkpose.geometry.crop_affine` composed with
        :func:`darkpose.geometry.hflip_affine`, computed with scalars (one person: the
        array version's overhead would dominate).
        """
        cfg = self.config
        cx, cy = float(center[0]), float(center[1])
        src = float(scale[0]) * geometry.PIXEL_STD
        rad = math.radians(rotation)
        cos, sin = math.cos(rad), math.sin(rad)
        fx = -1.0 if flipped else 1.0
        if flipped:
            cx = image_width - 1.0 - cx
        out = []
        for w, h in (cfg.image_size, cfg.heatmap_size):
            if cfg.convention == "darkpose":
                k, dx, dy = (w - 1.0) / (src - 1.0), (w - 1.0) / 2.0, (h - 1.0) / 2.0
            else:
                k, dx, dy = w / src, w / 2.0, h / 2.0
            a, b, c, d = k * cos, k * sin, -k * sin, k * cos
            tx, ty = dx - a * cx - b * cy, dy - c * cx - d * cy
            if flipped:  # (crop o flip)(p): flip x -> width - 1 - x first
                tx, ty = tx + a * (image_width - 1.0), ty + c * (image_width - 1.0)
            out.append(np.array([[fx * a, b, tx], [fx * c, d, ty]]))
        return out[0], out[1]

    # -- image ----------------------------------------------------------------------------

    def normalize(
        self, crop: np.ndarray, to_rgb: bool, jitter=None
    ) -> np.ndarray:
        """(H, W, 3) uint8 BGR crop -> (3, H, W) float32, channels in RGB or BGR order.

        ``jitter`` = (brightness, contrast, saturation) factors, applied in [0, 255] before
        the normalisation.
        """
        h, w = crop.shape[:2]
        order = (2, 1, 0) if to_rgb else (0, 1, 2)  # output channel c <- crop channel order[c]
        a = self._a_rgb if to_rgb else self._a_rgb[::-1]
        b = self._b_rgb if to_rgb else self._b_rgb[::-1]
        out = np.empty((3, h, w), dtype=np.float32)
        planes = cv2.split(crop)
        if jitter is None or all(v == 1.0 for v in jitter):
            for c in range(3):  # out[c] = plane * a + b, converted and scaled in one pass
                p = planes[order[c]]
                cv2.addWeighted(p, float(a[c]), p, 0.0, float(b[c]), dst=out[c], dtype=cv2.CV_32F)
            return out
        for c in range(3):
            out[c] = planes[order[c]]
        brightness, contrast, saturation = (float(v) for v in jitter)
        out *= brightness
        gray_w = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # R, G, B
        gray_w = gray_w if to_rgb else gray_w[::-1]
        gray = np.tensordot(gray_w, out, axes=1)
        out += (1.0 - contrast) * (float(gray.mean()) - out)
        gray = np.tensordot(gray_w, out, axes=1)
        out += (1.0 - saturation) * (gray[None] - out)
        np.clip(out, 0.0, 255.0, out=out)
        out *= a[:, None, None]
        out += b[:, None, None]
        return out

    # -- the sample -----------------------------------------------------------------------

    def __call__(
        self, image: np.ndarray, instance, rng=None, to_rgb: bool = True
    ) -> dict[str, Any]:
        """Make the sample of one person.

        Parameters
        ----------
        image : (H_img, W_img, 3) uint8, BGR as decoded by OpenCV
        instance : :class:`darkpose.data.base.PersonInstance` (center, scale, keypoints...)
        rng : numpy Generator or the sample's nine numbers (see :meth:`draw`); required
            when ``train``
        to_rgb : output channels in RGB order (else BGR)

        Returns
        -------
        dict with "image" (3, H, W) float32 tensor, "target" (K, h, w) and
        "target_weight" (K,) float32 tensors (when ``config.targets == "sample"``), and
        "meta":
        image_id, annotation_id, image_path, score, area; center (2,), scale (2,),
        rotation (degrees) and flipped actually used; keypoints (K, 3) in the image as
        annotated; keypoints_heatmap (K, 3) in heatmap pixels (the codec's input;
        left/right swapped when flipped; visibility last); image_to_input and
        heatmap_to_image (2, 3) float64 affines (the first places image points in the
        input crop, e.g. for drawing; the second recovers image coordinates from decoded
        heatmap coordinates of this crop).
        """
        cfg = self.config
        keypoints = np.asarray(instance.keypoints, dtype=np.float64)
        center = np.asarray(instance.center, dtype=np.float64)
        scale = np.asarray(instance.scale, dtype=np.float64)
        rotation, flipped, jitter = 0.0, False, None
        if self.train:
            if rng is None:
                raise ValueError("a training transform needs a random generator (rng)")
            center, scale, rotation, flipped, jitter = self.draw(keypoints, center, scale, rng)
        a_in, a_hm = self.affines(center, scale, rotation, flipped, image.shape[1])
        crop = cv2.warpAffine(image, a_in, cfg.image_size, flags=cv2.INTER_LINEAR)
        pixels = self.normalize(crop, to_rgb, jitter)

        # Keypoints follow their labels: when flipped, left and right swap names.
        kp_hm = keypoints[self._flip_index] if flipped else keypoints.copy()
        kp_hm[:, :2] = kp_hm[:, :2] @ a_hm[:, :2].T + a_hm[:, 2]

        sample: dict[str, Any] = {"image": torch.from_numpy(pixels)}
        if cfg.targets == "sample":
            target, weight = self.encode(kp_hm[None])
            sample["target"] = torch.from_numpy(target[0])
            sample["target_weight"] = torch.from_numpy(weight[0])
        sample["meta"] = {
            "image_id": instance.image_id,
            "annotation_id": instance.annotation_id,
            "image_path": str(instance.image_path),
            "score": instance.score,
            "area": instance.area,
            "center": np.array(center, dtype=np.float64),
            "scale": scale if self.train else np.array(scale, dtype=np.float64),
            "rotation": float(rotation),
            "flipped": flipped,
            "keypoints": keypoints.copy(),
            "keypoints_heatmap": kp_hm,
            "image_to_input": a_in,
            "heatmap_to_image": _invert(a_hm),
        }
        return sample

    # -- targets --------------------------------------------------------------------------

    def encode(self, keypoints_heatmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets of keypoints in heatmap pixels, through :func:`darkpose.codec.encode`.

        keypoints_heatmap (N, K, 3) (x, y, visibility) -> target (N, K, h, w) float32,
        target_weight (N, K) float32 (times the joint weights if ``use_joint_weights``).
        """
        cfg = self.config
        kp = np.asarray(keypoints_heatmap, dtype=np.float64)
        target, weight = encode(
            kp[..., :2], kp[..., 2], cfg.heatmap_size, cfg.sigma, method=cfg.encode_method
        )
        if cfg.use_joint_weights:
            weight = weight * self.metadata.joint_weights
        return np.ascontiguousarray(target, np.float32), np.ascontiguousarray(weight, np.float32)

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """``collate_fn`` for a DataLoader: stack the samples and, with
        ``targets="batch"``, encode the batch's targets in one codec call.

        Returns the batch as ``torch.utils.data.default_collate`` makes it, with "target"
        (B, K, h, w) and "target_weight" (B, K) added in batch mode.
        """
        from torch.utils.data import default_collate

        batch = default_collate(samples)
        if self.config.targets == "batch":
            kp = np.stack([s["meta"]["keypoints_heatmap"] for s in samples])
            target, weight = self.encode(kp)
            batch["target"] = torch.from_numpy(target)
            batch["target_weight"] = torch.from_numpy(weight)
        return batch
