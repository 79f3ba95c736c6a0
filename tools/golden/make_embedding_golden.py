"""Golden fixtures for the embedder: torchvision's ResNet18 (fc removed) on seeded weights.

The real IMAGENET1K_V1 weights cannot be downloaded on CI machines, so parity is proven with
seeded random weights that both sides can make: `cargo xtask test-weights` writes them as
safetensors with torchvision's tensor names, this script loads that file into
`torchvision.models.resnet18`, and the Rust test regenerates the same weights itself.

Writes to tests/fixtures/golden/embeddings/:
- `<image>_<normalize>.f32`: the 512 features (raw little-endian float32) of each committed
  image, with inputs in [0, 1] (`none`) and ImageNet-normalised (`imagenet`);
- `conv1_bn1_*.pth`: the stem's tensors only, saved by torch.save under two archive names, to
  test the `.pth` reader (it must read both layouts) and the missing-tensor error;
- `manifest.json`: the cases, the weights' sha256 and the versions used.

Re-run (from the repository root; torch's wheels are large, CPU is enough):
    python3 -m venv /tmp/golden && /tmp/golden/bin/pip install -r tools/golden/requirements.txt
    cargo xtask test-weights /tmp/golden-weights.safetensors
    /tmp/golden/bin/python tools/golden/make_embedding_golden.py /tmp/golden-weights.safetensors
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
RESIZED = ROOT / "tests/fixtures/golden/resize"
OUT = ROOT / "tests/fixtures/golden/embeddings"

# Three 224x224 images (one batch, as the pipeline embeds them) and one 500x300 image (a
# non-square input through the same network).
IMAGES = ["city_224x224", "forest_224x224", "sunset_224x224", "sunset_500x300"]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_image(name: str) -> torch.Tensor:
    pixels = np.asarray(Image.open(RESIZED / f"{name}.png").convert("RGB"))
    # Exactly torchvision's to_tensor: uint8 -> float32, then / 255.
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)


def main() -> None:
    weights_path = Path(sys.argv[1])
    state = load_file(str(weights_path))
    model = torchvision.models.resnet18(weights=None)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("fc.") or k.endswith("num_batches_tracked") for k in missing), missing
    model.fc = torch.nn.Identity()
    model.eval()
    torch.set_num_threads(1)

    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    with torch.no_grad():
        for normalize in ["none", "imagenet"]:
            for name in IMAGES:
                x = load_image(name)
                if normalize == "imagenet":
                    x = (x - MEAN) / STD
                features = model(x)
                values = features[0].numpy().astype("<f4")
                assert values.shape == (512,)
                values.tofile(OUT / f"{name}_{normalize}.f32")
                cases.append({"image": f"{name}.png", "normalize": normalize,
                              "file": f"{name}_{normalize}.f32",
                              "abs_max": float(np.abs(values).max())})

    stem = {k: v for k, v in state.items() if k.startswith(("conv1.", "bn1."))}
    pth_files = []
    for file_name in ["conv1_bn1_short.pth", "conv1_bn1_with_a_much_longer_archive_name.pth"]:
        torch.save(stem, OUT / file_name)
        pth_files.append(file_name)

    manifest = {
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "tolerance_abs": 1e-4,
        "cases": cases,
        "pth_files": pth_files,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(cases)} embeddings and {len(pth_files)} .pth files to {OUT}")


if __name__ == "__main__":
    main()
