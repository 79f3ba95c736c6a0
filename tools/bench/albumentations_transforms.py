"""The albumentations peer of the transform bench: each of SPEC's transforms at the bench's
parameters, on one thread, 224x224 uint8 in and out, images/s (the best of five passes over 64
seeded images), as JSON on stdout. Run with the pinned requirements of
requirements-albumentations.txt; `cargo run --release -p drift-transformer --example
transform_speed` prints our side on the same shapes.

The parameters are those our transforms draw at level 0.5 (brightness, contrast and saturation
factors, a hue shift, a rotation angle, a blur sigma, a noise sigma), fixed, so both sides do the
same work: ColorJitter has torchvision's semantics, Rotate uses nearest-neighbour resampling with
a black border, GaussianBlur a 5x5 kernel.
"""

import json
import sys
import time

import cv2
import numpy as np
import albumentations as A

cv2.setNumThreads(1)

def images():
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:224, 0:224]
    base = (x // 2 + y // 3).astype(np.uint8)
    out = []
    for _ in range(64):
        shift = rng.integers(0, 256, size=3, dtype=np.uint8)
        noise = rng.integers(0, 8, size=(224, 224, 3), dtype=np.uint8)
        out.append(np.ascontiguousarray(base[..., None] + shift + noise))
    return out

TRANSFORMS = {
    "rotate": A.Rotate(limit=(33.0, 33.0), interpolation=cv2.INTER_NEAREST,
                       border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0),
    "brightness": A.ColorJitter(brightness=(1.6, 1.6), contrast=(1, 1), saturation=(1, 1),
                                hue=(0, 0), p=1.0),
    "contrast": A.ColorJitter(brightness=(1, 1), contrast=(1.6, 1.6), saturation=(1, 1),
                              hue=(0, 0), p=1.0),
    "saturation": A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1.6, 1.6),
                                hue=(0, 0), p=1.0),
    "hue": A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1),
                         hue=(0.25, 0.25), p=1.0),
    "gaussian_blur": A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(1.5, 1.5), p=1.0),
    "gaussian_noise": A.GaussNoise(std_range=(0.1, 0.1), mean_range=(0.0, 0.0), p=1.0),
}
# `default` at level 0.5 is the blur at sigma 1.5: its peer is the same GaussianBlur.
TRANSFORMS["default"] = TRANSFORMS["gaussian_blur"]
TRANSFORMS["seven transforms"] = A.Compose(
    [TRANSFORMS[name] for name in ["rotate", "brightness", "contrast", "saturation", "hue",
                                   "gaussian_blur", "gaussian_noise"]]
)

def main():
    data = images()
    result = {"albumentations": A.__version__, "opencv": cv2.__version__, "rates": {}}
    for name, transform in TRANSFORMS.items():
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for image in data:
                transform(image=image)["image"]
            best = min(best, time.perf_counter() - started)
        result["rates"][name] = len(data) / best
    json.dump(result, sys.stdout, indent=1)

main()
