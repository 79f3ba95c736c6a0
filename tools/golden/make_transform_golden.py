"""Golden fixtures for the transformer: torchvision.transforms.v2.functional on float32 tensors.

For each committed source image and each (transform, fixed parameter) case, applies the
torchvision function to the image as a float32 CHW tensor in [0, 1] (uint8 / 255) and stores the
result as raw little-endian float32 CHW in tests/fixtures/golden/transforms/, with a manifest.json
that lists the cases. The Rust test applies the same parameters and compares within one 8-bit
level (1/255).

Re-run (from the repository root; torch's wheels are large, CPU is enough):
    python3 -m venv /tmp/golden && /tmp/golden/bin/pip install -r tools/golden/requirements.txt
    /tmp/golden/bin/python tools/golden/make_transform_golden.py
"""

import json
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms.v2 import functional as F

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests/fixtures/images"
OUT = ROOT / "tests/fixtures/golden/transforms"

# Two inputs: a non-square one (general rotation path) and a square one (torchvision's exact
# rot90 shortcuts at 90 and 270 degrees). Both are plain PNGs, read identically by both sides.
SOURCES = {
    "forest_64x32": ROOT / "tests/fixtures/golden/resize/forest_64x32.png",
    "square_40": IMAGES / "square_40.png",
}

CASES = [
    *[("rotate", a) for a in [-90.0, -45.0, 13.7, 30.0, 89.9, 90.0, 180.0, 270.0]],
    *[("brightness", f) for f in [0.0, 0.5, 1.7, 4.0]],
    *[("contrast", f) for f in [0.0, 0.5, 2.5, 4.0]],
    *[("saturation", f) for f in [0.0, 0.3, 5.0, 16.0]],
    *[("hue", h) for h in [-0.5, -0.2, 0.1, 0.5]],
    *[("gaussian_blur", s) for s in [0.3, 1.5, 3.0]],
]


def apply(name: str, image: torch.Tensor, value: float) -> torch.Tensor:
    if name == "rotate":
        return F.rotate(image, value, interpolation=F.InterpolationMode.NEAREST, fill=0.0)
    if name == "brightness":
        return F.adjust_brightness(image, value)
    if name == "contrast":
        return F.adjust_contrast(image, value)
    if name == "saturation":
        return F.adjust_saturation(image, value)
    if name == "hue":
        return F.adjust_hue(image, value)
    if name == "gaussian_blur":
        return F.gaussian_blur(image, kernel_size=[5, 5], sigma=[value, value])
    raise ValueError(name)


def main() -> None:
    if not SOURCES["square_40"].exists():
        city = Image.open(IMAGES / "city.png").convert("RGB")
        city.resize((40, 40), Image.Resampling.BILINEAR).save(SOURCES["square_40"])
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__, "cases": []}
    for source_name, path in SOURCES.items():
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
        image = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255.0)
        for name, value in CASES:
            result = apply(name, image.clone(), value).contiguous()
            file = f"{source_name}_{name}_{value:+.2f}.f32"
            result.numpy().astype("<f4").tofile(OUT / file)
            manifest["cases"].append(
                {"source": path.relative_to(ROOT).as_posix(), "transform": name, "value": value, "file": file}
            )
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest['cases'])} cases written to {OUT}")


if __name__ == "__main__":
    main()
