"""spatter's steps in `imagecorruptions` 1.1.2, timed one by one: what each of its calls costs
the package at severity 3 (the water branch) on one 224x224 image, single-threaded, and the
whole corruption over the bench's sixteen images. The OpenCV steps are OpenCV's own SIMD C++;
their sum bounds how fast a bit-exact port can be against the package's total. Microseconds,
the best of five passes, as JSON on stdout. Run in the venv of
tools/golden/requirements-corruptions.txt, with the glibc settings that give a partial run
the full bench's speed (docs/MEASUREMENTS.md, "(eighth)"):

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824 \\
        python tools/bench/spatter_steps.py
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import imagecorruptions_speed as bench  # noqa: E402  (threads pinned to 1, the package's shims)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from imagecorruptions import corruptions  # noqa: E402
from skimage.filters import gaussian  # noqa: E402


def best_us(step, repeat=200):
    """The best of five passes of `repeat` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            step()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best * 1e6


def main():
    np.random.seed(0)
    # Severity 3: loc, scale, sigma, threshold, intensity, mud (0: water).
    c = (0.65, 0.3, 3, 0.68, 0.6, 0)
    field = np.random.normal(size=(224, 224), loc=c[0], scale=c[1])
    liquid = gaussian(field, sigma=c[2])
    liquid[liquid < c[3]] = 0
    liquid_bytes = (liquid * 255).astype(np.uint8)
    edges = 255 - cv2.Canny(liquid_bytes, 50, 150)
    distances = cv2.distanceTransform(edges, cv2.DIST_L2, 5)
    _, truncated = cv2.threshold(distances, 20, 20, cv2.THRESH_TRUNC)
    blurred = cv2.blur(truncated, (3, 3)).astype(np.uint8)
    equalized = cv2.equalizeHist(blurred)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    numpy_steps = {
        "normal field": lambda: np.random.normal(size=(224, 224), loc=c[0], scale=c[1]),
        "skimage gaussian (f64)": lambda: gaussian(field, sigma=c[2]),
    }
    opencv_steps = {
        "Canny": lambda: cv2.Canny(liquid_bytes, 50, 150),
        "distanceTransform (L2, 5)": lambda: cv2.distanceTransform(edges, cv2.DIST_L2, 5),
        "threshold (trunc)": lambda: cv2.threshold(distances, 20, 20, cv2.THRESH_TRUNC),
        "blur (f32)": lambda: cv2.blur(truncated, (3, 3)),
        "equalizeHist": lambda: cv2.equalizeHist(blurred),
        "filter2D (emboss, u8)": lambda: cv2.filter2D(blurred, cv2.CV_8U, emboss),
        "blur (u8)": lambda: cv2.blur(equalized, (3, 3)),
    }
    result = {"opencv": cv2.__version__, "numpy": np.__version__, "us": {}}
    for name, step in {**numpy_steps, **opencv_steps}.items():
        result["us"][name] = best_us(step)
    result["opencv steps, sum"] = sum(result["us"][name] for name in opencv_steps)
    images = bench.images(16)

    def whole():
        for image in images:
            np.uint8(corruptions.spatter(image, 3))

    result["spatter, whole"] = best_us(whole, repeat=3) / len(images)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
