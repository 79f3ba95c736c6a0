"""Golden fixtures for the ImageNet-C corruptions: the `imagecorruptions` package at its five
integer severities.

For each source image and each registered ImageNet-C corruption, applies
`imagecorruptions.corruptions.<name>(PIL image, severity)` for severities 1-5 and stores the
8-bit RGB result as a PNG in tests/fixtures/golden/corruptions/, with a manifest.json listing
the cases and the versions used. The Rust test applies the same corruption at level k/5 (which
is exactly severity k) and compares: pixelate within one 8-bit level, jpeg_compression within
the bound the test states (a different JPEG codec, see the test).

Re-run (from the repository root):
    python3 -m venv /tmp/corrupt && /tmp/corrupt/bin/pip install -r tools/golden/requirements-corruptions.txt
    /tmp/corrupt/bin/python tools/golden/make_corruption_golden.py
"""

import importlib.metadata
import json
from pathlib import Path

import imagecorruptions
import numpy as np
import PIL
import PIL.features
from imagecorruptions import corruptions
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fixtures/golden/corruptions"

# A photo at the default output size, a non-square small one and a square one whose sides
# divide exactly at some factors (40 x 0.5 = 20), where int() truncation is on the edge.
SOURCES = {
    "city_224x224": ROOT / "tests/fixtures/golden/resize/city_224x224.png",
    "forest_64x32": ROOT / "tests/fixtures/golden/resize/forest_64x32.png",
    "square_40": ROOT / "tests/fixtures/images/square_40.png",
}

CORRUPTIONS = ["pixelate", "jpeg_compression"]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {
        "imagecorruptions": importlib.metadata.version("imagecorruptions"),
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "libjpeg": PIL.features.version("jpg"),
        "libjpeg_turbo": PIL.features.version_feature("libjpeg_turbo"),
        "cases": [],
    }
    for source_name, path in SOURCES.items():
        image = Image.open(path).convert("RGB")
        for name in CORRUPTIONS:
            for severity in range(1, 6):
                result = getattr(corruptions, name)(image.copy(), severity)
                pixels = np.asarray(result, dtype=np.uint8)
                assert pixels.shape == (image.height, image.width, 3), pixels.shape
                file = f"{source_name}_{name}_{severity}.png"
                Image.fromarray(pixels, "RGB").save(OUT / file)
                manifest["cases"].append(
                    {
                        "source": path.relative_to(ROOT).as_posix(),
                        "corruption": name,
                        "severity": severity,
                        "file": file,
                    }
                )
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest['cases'])} cases written to {OUT}")


if __name__ == "__main__":
    main()
