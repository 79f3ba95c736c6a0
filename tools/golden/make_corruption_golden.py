"""Golden fixtures for the ImageNet-C corruptions: the `imagecorruptions` package at its five
integer severities.

For each source image and each registered ImageNet-C corruption, applies
`imagecorruptions.corruptions.<name>(PIL image, severity)` and stores the result as an 8-bit
PNG in tests/fixtures/golden/corruptions/, with a manifest.json listing the cases, the versions
and the shims used. The small sources run at severities 1-5, the 224-px photo at severity 3.
The Rust test applies the same corruption at level k/5 (which is exactly severity k) and
compares: pixelate within one 8-bit level, jpeg_compression within the bound the test states
(a different JPEG codec, see the test), the others within one level.

Outputs: the functions return floats in [0, 255], which `corrupt()` truncates to 8 bits; our
chain rounds once at its end (half up), so the golden stores the float output rounded half up,
which is what parity is judged on. pixelate and jpeg_compression return PIL images (8 bits).

Randomness: before each case the global numpy generator is seeded with the case's seed;
impulse_noise, which draws from scikit-image's own `default_rng()`, gets a Generator on the
same legacy-seeded MT19937. The Rust test regenerates every draw from the seed with a replica
of numpy's legacy algorithms (tests/common/numpy_random.rs), first checking the count and sum
of each kind of draw recorded here, so no random field is stored.

Shims (imagecorruptions 1.1.2 predates numpy 2 and scikit-image 0.20): `np.float_` is
float64 again, and `gaussian(..., multichannel=True)` becomes `channel_axis=-1`, which is what
`multichannel` meant. Neither changes the package's arithmetic.

Re-run (from the repository root):
    python3 -m venv /tmp/corrupt && /tmp/corrupt/bin/pip install -r tools/golden/requirements-corruptions.txt
    /tmp/corrupt/bin/python tools/golden/make_corruption_golden.py
"""

import importlib.metadata
import json
from pathlib import Path

import numpy as np

if not hasattr(np, "float_"):
    np.float_ = np.float64  # the plasma fractal (fog) of 1.1.2 uses it

import imagecorruptions  # noqa: E402
import PIL  # noqa: E402
import PIL.features  # noqa: E402
import scipy  # noqa: E402
import skimage  # noqa: E402
from imagecorruptions import corruptions  # noqa: E402
from PIL import Image  # noqa: E402
from skimage.filters import gaussian as _skimage_gaussian  # noqa: E402


def _gaussian(image, sigma=1, multichannel=None, **kwargs):
    if multichannel:
        kwargs["channel_axis"] = -1
    return _skimage_gaussian(image, sigma=sigma, **kwargs)


corruptions.gaussian = _gaussian  # corruptions.py did `from skimage.filters import gaussian`

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fixtures/golden/corruptions"

# A photo at the default output size, a non-square small one and a square one whose sides
# divide exactly at some factors (40 x 0.5 = 20), where int() truncation is on the edge.
SOURCES = {
    "city_224x224": ROOT / "tests/fixtures/golden/resize/city_224x224.png",
    "forest_64x32": ROOT / "tests/fixtures/golden/resize/forest_64x32.png",
    "square_40": ROOT / "tests/fixtures/images/square_40.png",
}

# 8-bit results from PIL: stored as they are.
PIL_CORRUPTIONS = ["pixelate", "jpeg_compression"]
# Float results: stored rounded.
FLOAT_CORRUPTIONS = [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "elastic_transform",
    "speckle_noise",
    "gaussian_blur",
    "saturate",
]
CORRUPTIONS = PIL_CORRUPTIONS + FLOAT_CORRUPTIONS
# The weather corruptions (part 2), float results too: each one's cases come after all of the
# cases before it, in the order they were added, so that earlier cases keep their seeds and
# files.
WEATHER_CORRUPTIONS = ["fog", "snow", "frost", "spatter"]

# The 224-px photo runs the float corruptions at this severity only (fixture size).
PHOTO = "city_224x224"
PHOTO_SEVERITIES = [3]


class Recorder:
    """Counts and sums every draw from the global numpy generator, per kind."""

    def __init__(self):
        self.draws = {}
        self.originals = {}

    def _wrap(self, kind):
        original = getattr(np.random, kind)
        self.originals[kind] = original

        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            values = np.asarray(out, dtype=np.float64)
            count, total = self.draws.get(kind, (0, 0.0))
            self.draws[kind] = (count + values.size, total + float(values.sum()))
            return out

        setattr(np.random, kind, wrapped)

    def __enter__(self):
        for kind in ["normal", "uniform", "poisson", "randint"]:
            self._wrap(kind)
        return self

    def __exit__(self, *exc):
        for kind, original in self.originals.items():
            setattr(np.random, kind, original)


def seeded_generator(seed):
    """A Generator on MT19937 seeded as `np.random.seed(seed)` seeds the legacy one."""
    bit_generator = np.random.MT19937()
    bit_generator._legacy_seeding(seed)
    return np.random.Generator(bit_generator)


def run_case(name, image, severity, seed):
    """The corruption's output as 8-bit pixels, and what it drew."""
    np.random.seed(seed)
    if name == "impulse_noise":
        original = np.random.default_rng
        np.random.default_rng = lambda *_: seeded_generator(seed)
        try:
            result = corruptions.impulse_noise(image.copy(), severity)
        finally:
            np.random.default_rng = original
        fields = seeded_generator(seed).random((2, image.height, image.width, 3))
        draws = {"unit": (fields.size, float(fields.sum()))}
    else:
        with Recorder() as recorder:
            result = getattr(corruptions, name)(image.copy(), severity)
        draws = recorder.draws
    if name in PIL_CORRUPTIONS:
        pixels = np.asarray(result, dtype=np.uint8)
    else:
        # Rounded half up, our chain's rule (the package's floats often sit on exact halves:
        # 255 k / 60 for shot_noise, v + 0.1 for brightness).
        out = np.clip(np.asarray(result, dtype=np.float64), 0, 255)
        pixels = np.floor(out + 0.5).astype(np.uint8)
    return pixels, {kind: {"count": c, "sum": t} for kind, (c, t) in draws.items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {
        "imagecorruptions": importlib.metadata.version("imagecorruptions"),
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "libjpeg": PIL.features.version("jpg"),
        "libjpeg_turbo": PIL.features.version_feature("libjpeg_turbo"),
        "shims": ["np.float_ = np.float64", "gaussian(multichannel=True) -> channel_axis=-1"],
        "outputs": "float results rounded half up; pixelate and jpeg_compression as PIL returns them",
        "cases": [],
    }
    seed = 1000
    passes = [(CORRUPTIONS, FLOAT_CORRUPTIONS)] + [([name], [name]) for name in WEATHER_CORRUPTIONS]
    for source_name, path, names, floats in [
        (source_name, path, names, floats)
        for names, floats in passes
        for source_name, path in SOURCES.items()
    ]:
        image = Image.open(path).convert("RGB")
        for name in names:
            photo = source_name == PHOTO and name in floats
            for severity in PHOTO_SEVERITIES if photo else range(1, 6):
                seed += 1
                pixels, draws = run_case(name, image, severity, seed)
                assert pixels.shape == (image.height, image.width, 3), pixels.shape
                file = f"{source_name}_{name}_{severity}.png"
                Image.fromarray(pixels, "RGB").save(OUT / file, optimize=True)
                manifest["cases"].append(
                    {
                        "source": path.relative_to(ROOT).as_posix(),
                        "corruption": name,
                        "severity": severity,
                        "seed": seed,
                        "draws": draws,
                        "file": file,
                    }
                )
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest['cases'])} cases written to {OUT}")


if __name__ == "__main__":
    main()
