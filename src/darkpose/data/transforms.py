"""The top-down transform: augmentation, affine crop, normalisation and heatmap targets.

One class serves training (``train=True``: half-body, random scale, rotation, flip,
optional colour jitter) and test time (``train=False``: the plain crop,
:func:`darkpose.data.crop.crop_person`). Both return a :class:`darkpose.data.sample.Sample`:
the (3, H, W) float32 input normalised with the ImageNet mean/std, the (K, h, w) target and
(K,) weight when ``config.targets == "sample"``, and its :class:`SampleMeta`.

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
  :class:`darkpose.data.base.TopDownDataset`), a fixed number of draws per sample, each
  decision its own draw (:data:`DRAW_SLOTS`);
- the affines are :func:`darkpose.geometry.crop_affine` (one box at the two output sizes,
  in Python floats), the half-body box is :func:`darkpose.geometry.box_extent` padded by
  :func:`darkpose.geometry.boxes_to_center_scale`: one definition of each.

Bad configuration values and bad inputs (a grey or empty image, a degenerate or
non-finite centre or scale) raise ValueError naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from darkpose import geometry
from darkpose.codec import MIN_SIGMA, encode
from darkpose.data.crop import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_image,
    check_triple,
    crop_person,
    normalization,
    normalize_crop,
)
from darkpose.data.keypoint_metadata import KeypointMetadata, load_metadata
from darkpose.data.sample import Batch, Sample, SampleMeta

HALF_BODY_PADDING = 1.5
"""Enlargement of the half-body box after its aspect padding (the reference's 1.5)."""

MIN_WINDOW = geometry.BOX_PADDING
"""Narrowest crop window (px) the scale augmentation shrinks to: the window 200 s of the
smallest valid box (1 px, :func:`darkpose.geometry.clean_boxes`), 1.25 px. Only boxes under
about 2 px are affected; without it a 1-px box zoomed by 0.65 would have a window under
1 px, where the ``"darkpose"`` crop is infinite or mirrored."""

DRAW_SLOTS = (
    "half_body", "half_body_side", "rotation_on", "flip",
    "brightness", "contrast", "saturation", "scale_normal", "rotation_normal",
)
"""What each of a sample's nine numbers decides (the first seven uniform in [0, 1), the last
two standard normal): one number per decision, so changing one changes only its own."""


def default_sigma(image_size: tuple[int, int]) -> float:
    """Target sigma of the official configs: H / 128 (1 at 128x96, 2 at 256x192 and
    256x256, 3 at 384x288; DESIGN.md section 2), and at least the codec's ``MIN_SIGMA`` (1/6,
    reached below 22 px of input height). ``image_size`` is (W, H)."""
    return max(image_size[1] / 128.0, MIN_SIGMA)


def _check_size(name: str, value, minimum: int) -> tuple[int, int]:
    try:
        w, h = value
        ok = all(float(v) == int(v) >= minimum for v in (w, h))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected (W, H), two integers >= {minimum}, got {value!r}")
    return int(w), int(h)


def _check_number(name: str, value, low: float, high: float, high_open: bool = False) -> None:
    """``value`` a finite real number in [low, high] (or [low, high) with ``high_open``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a number in [{low:g}, {high:g}{bracket}, got {value!r}")


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation (DESIGN.md section 4), the config's ``augment`` section
    (:class:`darkpose.config.Config` uses this class): the one home of these defaults.

    Attributes
    ----------
    flip_prob : probability of a horizontal flip (0.5)
    scale_factor : the window is scaled by clip(1 + sf z, 1 - sf, 1 + sf), z ~ N(0, 1) (0.35)
    rotation_factor, rotation_prob : rotation clip(rf z, -2 rf, 2 rf) degrees (45), applied
        with probability 0.6
    half_body_prob, half_body_min_keypoints : half-body crop with probability 0.3 when more
        than 8 keypoints are labelled
    half_body_upper_prob : probability of trying the upper body first (0.5; the reference's
        ``np.random.randn() < 0.5`` makes it P(Z < 0.5) = 0.6915)
    color_jitter : brightness, contrast and saturation factors drawn uniformly in
        [1 - j, 1 + j] (0 disables; not in the official recipe)

    A value out of range is a ValueError naming the field.
    """

    flip_prob: float = 0.5
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    half_body_upper_prob: float = 0.5
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in ("flip_prob", "rotation_prob", "half_body_prob", "half_body_upper_prob"):
            _check_number(name, getattr(self, name), 0.0, 1.0)
        _check_number("scale_factor", self.scale_factor, 0.0, 1.0, high_open=True)
        _check_number("rotation_factor", self.rotation_factor, 0.0, math.inf, high_open=True)
        _check_number("color_jitter", self.color_jitter, 0.0, 1.0, high_open=True)
        _check_number("half_body_min_keypoints", self.half_body_min_keypoints, 0, math.inf,
                      high_open=True)


@dataclass(frozen=True)
class TransformConfig:
    """Settings of :class:`TopDownTransform` (defaults: the official COCO 256x192 recipe).

    Built from an experiment's config by :func:`darkpose.config.transform_config`.

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
    augment : Augmentation
        Training augmentation (unused at test time).
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
    augment: Augmentation = field(default_factory=Augmentation)
    use_joint_weights: bool = False
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        image_size = _check_size("image_size", self.image_size, 2)
        object.__setattr__(self, "image_size", image_size)
        if self.heatmap_size is None:
            if image_size[0] % 4 or image_size[1] % 4:
                raise ValueError(
                    f"image_size: expected multiples of 4 for the default heatmap_size "
                    f"(image_size / 4), got {image_size!r}; or give heatmap_size"
                )
            object.__setattr__(self, "heatmap_size", (image_size[0] // 4, image_size[1] // 4))
        # heatmaps narrower than 2 px have no pixel centres to decode between (the
        # "darkpose" zoom (w - 1) / (200 s - 1) is 0 at w = 1)
        heatmap_size = _check_size("heatmap_size", self.heatmap_size, 2)
        object.__setattr__(self, "heatmap_size", heatmap_size)
        stride = image_size[0] // heatmap_size[0]
        if image_size != (stride * heatmap_size[0], stride * heatmap_size[1]):
            # one integer stride on both axes: the heatmap covers the same window as the
            # input (crop_affine zooms by the width only), as every model here outputs
            raise ValueError(
                f"image_size: expected the heatmap_size {heatmap_size} times one integer "
                f"stride, got {image_size}"
            )
        if self.targets is True or self.targets is False:
            object.__setattr__(self, "targets", "sample" if self.targets else "none")
        if self.targets not in ("sample", "batch", "none"):
            raise ValueError(f"targets must be 'sample', 'batch' or 'none', got {self.targets!r}")
        if self.sigma is None:
            object.__setattr__(self, "sigma", default_sigma(self.image_size))
        # the codec's floor (MIN_SIGMA = 1/6 px), checked here so a bad config fails when made
        _check_number("sigma", self.sigma, MIN_SIGMA, math.inf, high_open=True)
        if self.convention not in geometry.CONVENTIONS:
            raise ValueError(
                f"convention must be one of {geometry.CONVENTIONS}, got {self.convention!r}"
            )
        if not isinstance(self.augment, Augmentation):
            raise TypeError(f"augment: expected an Augmentation, got {type(self.augment).__name__}")
        object.__setattr__(self, "mean", check_triple("mean", self.mean, positive=False))
        object.__setattr__(self, "std", check_triple("std", self.std, positive=True))

    @property
    def aspect_ratio(self) -> float:
        return self.image_size[0] / self.image_size[1]


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
        self._sizes = np.array([cfg.image_size, cfg.heatmap_size], dtype=np.float64)
        self._a_rgb, self._b_rgb = normalization(cfg.mean, cfg.std)

    # -- augmentation -------------------------------------------------------------------

    def _half_body(
        self, keypoints: np.ndarray, labelled: np.ndarray, u_side: float
    ) -> tuple[np.ndarray, np.ndarray] | None:
        upper = keypoints[labelled & self._upper, :2]
        lower = keypoints[labelled & ~self._upper, :2]
        if u_side < self.config.augment.half_body_upper_prob and len(upper) > 2:
            chosen = upper
        else:
            chosen = lower if len(lower) > 2 else upper
        if len(chosen) < 2:
            return None
        cfg = self.config
        low, high = chosen.min(axis=0), chosen.max(axis=0)
        box = np.concatenate([low, geometry.box_extent(low, high, cfg.convention)])
        _, scale = geometry.boxes_to_center_scale(
            box, cfg.aspect_ratio, HALF_BODY_PADDING, cfg.convention
        )
        if (scale * geometry.PIXEL_STD < HALF_BODY_PADDING).any():
            return None  # padded box under 1 px (coinciding keypoints under "hrnet")
        return chosen.mean(axis=0), scale[0]

    def draw(
        self, keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray, rng
    ) -> tuple[np.ndarray, np.ndarray, float, bool, tuple[float, float, float] | None]:
        """Draw one sample's augmentation.

        ``rng`` is a numpy Generator, or the nine numbers already drawn (seven uniform in
        [0, 1), two standard normal; :meth:`TopDownDataset.draws`). A sample always uses
        all nine, so its parameters do not depend on which branches are taken, and each
        decision has its own number (:data:`DRAW_SLOTS`): u0 < half_body_prob tries the
        half body, u1 < half_body_upper_prob the upper body first, u2 < rotation_prob
        rotates, u3 < flip_prob flips, u4..u6 give the brightness, contrast and saturation
        factors 1 + j (2u - 1); z0 the scale factor clip(1 + sf z0, 1 - sf, 1 + sf) (never
        shrinking the window below :data:`MIN_WINDOW`), z1 the angle clip(rf z1, -2 rf, 2 rf).

        Returns
        -------
        center (2,), scale (2,), rotation (degrees), flipped, jitter (3,) factors (None
        when ``color_jitter`` is 0)
        """
        aug = self.config.augment
        if isinstance(rng, np.random.Generator):
            u = rng.random(7).tolist()
            z0, z1 = rng.standard_normal(2).tolist()
        else:
            values = np.asarray(rng, dtype=np.float64)
            if values.shape != (9,):
                raise ValueError(f"draws: expected nine numbers, got shape {values.shape}")
            *u, z0, z1 = values.tolist()
            if not (all(0.0 <= v < 1.0 for v in u) and math.isfinite(z0 + z1)):
                raise ValueError(
                    f"draws: expected seven numbers in [0, 1) then two finite, got {u + [z0, z1]}"
                )
        jit = None
        if aug.color_jitter:
            jit = tuple(1.0 + aug.color_jitter * (2.0 * v - 1.0) for v in u[4:])
        if aug.half_body_prob > 0 and u[0] < aug.half_body_prob:
            labelled = keypoints[:, 2] > 0
            if labelled.sum() > aug.half_body_min_keypoints:
                hb = self._half_body(keypoints, labelled, u[1])
                if hb is not None:
                    center, scale = hb
        sf, rf = aug.scale_factor, aug.rotation_factor
        factor = min(max(z0 * sf + 1.0, 1.0 - sf), 1.0 + sf)
        smallest = geometry.PIXEL_STD * min(np.asarray(scale, np.float64).tolist())
        if 0.0 < smallest and factor * smallest < MIN_WINDOW:
            factor = max(factor, min(1.0, MIN_WINDOW / smallest))
        scale = scale * factor
        rotation = min(max(z1 * rf, -2.0 * rf), 2.0 * rf) if u[2] < aug.rotation_prob else 0.0
        flipped = u[3] < aug.flip_prob
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
        whose centre is mirrored with it: :func:`darkpose.geometry.crop_affine` at the
        mirrored centre composed with :func:`darkpose.geometry.hflip_affine`.
        """
        cfg = self.config
        if flipped:
            center = (image_width - 1.0 - float(center[0]), float(center[1]))
        a = geometry.crop_affine(center, scale, rotation, self._sizes, cfg.convention)
        if flipped:
            a = geometry.compose_affine(a, geometry.hflip_affine(image_width))
        return a[0], a[1]

    # -- image ----------------------------------------------------------------------------

    def normalize(
        self, crop: np.ndarray, to_rgb: bool, jitter=None
    ) -> np.ndarray:
        """(H, W, 3) uint8 BGR crop -> (3, H, W) float32, channels in RGB or BGR order
        (:func:`darkpose.data.crop.normalize_crop` with the config's mean and std).

        ``jitter`` = (brightness, contrast, saturation) factors, applied in [0, 255] before
        the normalisation.
        """
        return normalize_crop(crop, self._a_rgb, self._b_rgb, to_rgb, jitter)

    # -- the sample -----------------------------------------------------------------------

    def __call__(
        self, image: np.ndarray, instance, rng=None, to_rgb: bool = True
    ) -> Sample:
        """Make the sample of one person.

        Parameters
        ----------
        image : (H_img, W_img, 3) uint8, BGR as decoded by OpenCV, not empty
        instance : :class:`darkpose.data.base.PersonInstance` (center, scale, keypoints...);
            a centre or scale that :func:`darkpose.geometry.crop_affine` rejects (not
            finite, a window under 1 px, beyond 2**24 px) is a ValueError naming the
            image and annotation
        rng : numpy Generator or the sample's nine numbers (see :meth:`draw`); required
            when ``train``
        to_rgb : output channels in RGB order (else BGR)

        Returns
        -------
        :class:`darkpose.data.sample.Sample`: the (3, H, W) input, the (K, h, w) target and
        (K,) weight when ``config.targets == "sample"`` (else None), and the
        :class:`~darkpose.data.sample.SampleMeta` (the centre, scale, rotation and flip
        actually used, the keypoints in the image and in heatmap pixels, the affines).
        """
        cfg = self.config
        where = f"{instance.image_path}: annotation id {instance.annotation_id}"
        keypoints = np.asarray(instance.keypoints, dtype=np.float64)
        if keypoints.shape != (self.metadata.num_keypoints, 3):
            raise ValueError(
                f"{where}: keypoints: expected ({self.metadata.num_keypoints}, 3), "
                f"got shape {keypoints.shape}"
            )
        center = np.asarray(instance.center, dtype=np.float64)
        scale = np.asarray(instance.scale, dtype=np.float64)
        rotation, flipped, jitter = 0.0, False, None
        if self.train and rng is None:
            raise ValueError("a training transform needs a random generator (rng)")
        try:
            if self.train:
                check_image(image)
                center, scale, rotation, flipped, jitter = self.draw(keypoints, center, scale, rng)
                a_in, a_hm = self.affines(center, scale, rotation, flipped, image.shape[1])
                crop = cv2.warpAffine(image, a_in, cfg.image_size, flags=cv2.INTER_LINEAR)
                pixels = self.normalize(crop, to_rgb, jitter)
                heatmap_to_image = geometry.invert_affine(a_hm)
            else:
                c = crop_person(image, center, scale, cfg.image_size, cfg.convention,
                                heatmap_size=cfg.heatmap_size, to_rgb=to_rgb, mean=cfg.mean,
                                std=cfg.std)
                pixels, a_in, a_hm, heatmap_to_image = (
                    c.pixels, c.image_to_input, c.image_to_heatmap, c.heatmap_to_image
                )
        except (TypeError, ValueError) as err:
            raise type(err)(f"{where}: {err}") from err

        # Keypoints follow their labels: when flipped, left and right swap names.
        kp_hm = keypoints[self._flip_index] if flipped else keypoints.copy()
        kp_hm[:, :2] = kp_hm[:, :2] @ a_hm[:, :2].T + a_hm[:, 2]

        target = weight = None
        if cfg.targets == "sample":
            t, w = self.encode(kp_hm[None])
            target, weight = torch.from_numpy(t[0]), torch.from_numpy(w[0])
        meta = SampleMeta(
            image_id=instance.image_id,
            annotation_id=instance.annotation_id,
            image_path=str(instance.image_path),
            score=instance.score,
            area=instance.area,
            center=np.array(center, dtype=np.float64),
            scale=scale if self.train else np.array(scale, dtype=np.float64),
            rotation=float(rotation),
            flipped=flipped,
            keypoints=keypoints.copy(),
            keypoints_heatmap=kp_hm,
            image_to_input=a_in,
            heatmap_to_image=heatmap_to_image,
        )
        return Sample(torch.from_numpy(pixels), meta, target, weight)

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

    def collate(self, samples: list[Sample]) -> Batch:
        """``collate_fn`` for a DataLoader: stack the samples into a
        :class:`darkpose.data.sample.Batch`; with ``targets="batch"`` the batch's targets
        are encoded here in one codec call, with ``targets="sample"`` they are stacked.
        """
        image = torch.stack([s.image for s in samples])
        meta = [s.meta for s in samples]
        target = weight = None
        if self.config.targets == "batch":
            t, w = self.encode(np.stack([m.keypoints_heatmap for m in meta]))
            target, weight = torch.from_numpy(t), torch.from_numpy(w)
        elif self.config.targets == "sample":
            target = torch.stack([s.target for s in samples])
            weight = torch.stack([s.target_weight for s in samples])
        return Batch(image, meta, target, weight)
