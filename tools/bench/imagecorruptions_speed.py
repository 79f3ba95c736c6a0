"""The imagecorruptions peer of the corruption bench: each corruption of `imagecorruptions`
1.1.2 at severity 3, on one thread, 224x224 uint8 in, its float output truncated to uint8 as
`corrupt()` does, images/s (the best of three passes over 16 seeded images; 2 images for
glass_blur, which takes about a second each), as JSON on stdout. Run with the pinned
requirements of tools/golden/requirements-corruptions.txt; `cargo xtask bench` prints our side
(`transform imagenet_c:NAME@3`) and the ratio.

The package needs two shims on today's numpy and scikit-image (see
tools/golden/make_corruption_golden.py); neither changes its arithmetic.
"""

import os
import sys

for variable in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMEXPR_NUM_THREADS"]:
    os.environ[variable] = "1"

import importlib.metadata  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

if not hasattr(np, "float_"):
    np.float_ = np.float64

import cv2  # noqa: E402
from imagecorruptions import corruptions  # noqa: E402
from PIL import Image  # noqa: E402
from skimage.filters import gaussian as _skimage_gaussian  # noqa: E402

cv2.setNumThreads(1)


def _gaussian(image, sigma=1, multichannel=None, **kwargs):
    if multichannel:
        kwargs["channel_axis"] = -1
    return _skimage_gaussian(image, sigma=sigma, **kwargs)


corruptions.gaussian = _gaussian

NAMES = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
         "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
         "elastic_transform", "pixelate", "jpeg_compression", "speckle_noise", "gaussian_blur",
         "spatter", "saturate"]


def images(count):
    """The bench's seeded 224x224 test images (those of albumentations_transforms.py)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:224, 0:224]
    base = (x // 2 + y // 3).astype(np.uint8)
    out = []
    for _ in range(count):
        shift = rng.integers(0, 256, size=3, dtype=np.uint8)
        noise = rng.integers(0, 8, size=(224, 224, 3), dtype=np.uint8)
        out.append(Image.fromarray(np.ascontiguousarray(base[..., None] + shift + noise)))
    return out


def main():
    np.random.seed(0)
    data = images(16)
    result = {"imagecorruptions": importlib.metadata.version("imagecorruptions"),
              "numpy": np.__version__, "rates": {}}
    # Names on the command line time only those (all by default).
    for name in sys.argv[1:] or NAMES:
        function = getattr(corruptions, name)
        sample = data[:2] if name == "glass_blur" else data
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for image in sample:
                np.uint8(function(image, 3))
            best = min(best, time.perf_counter() - started)
        result["rates"][name] = len(sample) / best
    print(json.dumps(result))


if __name__ == "__main__":
    main()
