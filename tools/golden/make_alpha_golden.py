"""Golden fixtures for --alpha: PIL's compositing of an image with alpha onto a solid colour.

For each source with an alpha channel (RGBA, and the same as grey+alpha "LA") and each
background, pastes the image onto `Image.new("RGB", size, colour)` with its alpha as the mask,
which is what a user's `bg.paste(im, mask=im.getchannel("A"))` does, and saves the RGB result
as PNG in tests/fixtures/golden/alpha/ with a manifest.json. The Rust test decodes the source
at its own size (no resize) with `Alpha::Composite(colour)` and compares byte for byte.

Re-run (from the repository root): any venv with the pinned Pillow of requirements-corruptions.txt
    /tmp/corrupt/bin/python tools/golden/make_alpha_golden.py
"""

import json
from pathlib import Path

import PIL
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fixtures/golden/alpha"
RGBA = ROOT / "tests/fixtures/images/sunset_rgba.png"
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "#3366cc": (0x33, 0x66, 0xCC)}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    la = OUT / "sunset_la.png"
    Image.open(RGBA).convert("LA").save(la)
    manifest = {"pillow": PIL.__version__, "cases": []}
    for source in [RGBA, la]:
        image = Image.open(source)
        rgba = image.convert("RGBA")
        for name, colour in BACKGROUNDS.items():
            background = Image.new("RGB", rgba.size, colour)
            background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
            file = f"{source.stem}_on_{name.lstrip('#')}.png"
            background.save(OUT / file)
            manifest["cases"].append(
                {"source": source.relative_to(ROOT).as_posix(), "alpha": name, "file": file}
            )
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest['cases'])} cases written to {OUT}")


if __name__ == "__main__":
    main()
