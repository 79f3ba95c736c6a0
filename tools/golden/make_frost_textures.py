"""Writes the frost textures `imagenet_c:frost` embeds (crates/transformer/assets/frost/).

The textures are imagecorruptions 1.1.2's `frost1.png` .. `frost5.jpg` (frost6 is never chosen
by 1.1.2; frost3 holds frost2's pixels, so it is checked, not written), decoded as the package decodes them (`cv2.imread`: BGR, alpha dropped, JPEG through
OpenCV's libjpeg-turbo) and stored as lossless RGB PNG, so that every decoder reads the pixels
the package blends in. (The image crate's JPEG decoder differs from libjpeg-turbo by up to 3
levels on frost4 and frost5.)

Run in the venv of tools/golden/requirements-corruptions.txt:
    python tools/golden/make_frost_textures.py
"""

import importlib.metadata
import importlib.resources
import pathlib
import shutil

import cv2
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/transformer/assets/frost"
FILES = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"]


def main() -> None:
    package = importlib.resources.files("imagecorruptions")
    OUT.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(FILES, start=1):
        with importlib.resources.as_file(package / "frost" / name) as path:
            bgr = cv2.imread(str(path))
        rgb = bgr[..., ::-1]
        if name == "frost3.png":
            assert (rgb == previous).all(), "frost3 no longer holds frost2's pixels"
            continue
        previous = rgb
        out = OUT / f"frost{index}.png"
        Image.fromarray(rgb, "RGB").save(out, optimize=True)
        print(f"{out.relative_to(ROOT)}: {rgb.shape[1]}x{rgb.shape[0]}, {out.stat().st_size} bytes")
    dist = next(
        p for p in importlib.metadata.distribution("imagecorruptions").files if p.name == "LICENSE"
    )
    shutil.copy(dist.locate(), OUT / "LICENSE-imagecorruptions")


if __name__ == "__main__":
    main()
