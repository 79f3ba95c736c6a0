"""Golden fixtures for the reader: PIL's convert("RGB") + antialiased BILINEAR resize.

torchvision's Resize on a PIL image calls `img.resize((w, h), Image.BILINEAR)`; ImageFolder's
loader calls `convert("RGB")` first. This script applies exactly that to the committed images in
tests/fixtures/images/ and stores the results as PNG under tests/fixtures/golden/resize/.
It also derives the RGBA, greyscale and palette sources from sunset.png the first time.

Re-run (from the repository root):
    python3 -m venv /tmp/golden && /tmp/golden/bin/pip install -r tools/golden/requirements.txt
    /tmp/golden/bin/python tools/golden/make_resize_golden.py
"""

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "tests/fixtures/images"
OUT = ROOT / "tests/fixtures/golden/resize"
SIZES = [(224, 224), (64, 32), (500, 300)]


def derive_sources() -> None:
    base = Image.open(SOURCES / "sunset.png").convert("RGB")
    width, height = base.size
    if not (SOURCES / "sunset_rgba.png").exists():
        alpha = Image.linear_gradient("L").resize((width, height))
        rgba = base.copy()
        rgba.putalpha(alpha)
        rgba.save(SOURCES / "sunset_rgba.png")
    if not (SOURCES / "sunset_grey.png").exists():
        base.convert("L").save(SOURCES / "sunset_grey.png")
    if not (SOURCES / "sunset_palette.png").exists():
        base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(SOURCES / "sunset_palette.png")


def main() -> None:
    derive_sources()
    OUT.mkdir(parents=True, exist_ok=True)
    for source in sorted(SOURCES.glob("*.png")):
        image = Image.open(source).convert("RGB")
        for width, height in SIZES:
            resized = image.resize((width, height), Image.Resampling.BILINEAR)
            resized.save(OUT / f"{source.stem}_{width}x{height}.png")
            print(f"{source.name} {image.size} -> {width}x{height}")


if __name__ == "__main__":
    main()
