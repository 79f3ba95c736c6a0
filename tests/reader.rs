//! The reader's decoding and folder scan, through its public API.
//!
//! These are integration tests rather than unit tests because the reader's library is costly to
//! compile (every image decoder is instantiated in it): a unit-test harness would compile it a
//! second time.

use std::fs;
use std::path::Path;

use drift_core::ImageSize;
use drift_reader::{Alpha, Dataset, DecodeLimits, Decoder, ReaderError};
use image::{ImageEncoder, codecs::png::PngEncoder};

fn encode_png(width: u32, height: u32, color: image::ExtendedColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(data, width, height, color)
        .unwrap();
    out
}

fn decoder(w: u32, h: u32) -> Decoder {
    Decoder::new(ImageSize::new(w, h).unwrap())
}

#[test]
fn drops_alpha_and_replicates_grey() {
    let rgba = encode_png(1, 1, image::ExtendedColorType::Rgba8, &[10, 20, 30, 0]);
    let image = decoder(1, 1)
        .decode_bytes(&rgba, Path::new("a.png"))
        .unwrap();
    assert_eq!(image.pixels(), [10, 20, 30]);

    let grey = encode_png(1, 1, image::ExtendedColorType::L8, &[77]);
    let image = decoder(1, 1)
        .decode_bytes(&grey, Path::new("g.png"))
        .unwrap();
    assert_eq!(image.pixels(), [77, 77, 77]);

    let grey16 = encode_png(1, 1, image::ExtendedColorType::L16, &65535u16.to_ne_bytes());
    let image = decoder(1, 1)
        .decode_bytes(&grey16, Path::new("g16.png"))
        .unwrap();
    assert_eq!(image.pixels(), [255, 255, 255]);
}

#[test]
fn resizes_a_constant_image_to_the_same_constant() {
    let data = [200u8, 100, 50].repeat(37 * 23);
    let png = encode_png(37, 23, image::ExtendedColorType::Rgb8, &data);
    let image = decoder(8, 5)
        .decode_bytes(&png, Path::new("c.png"))
        .unwrap();
    assert!(image.pixels().chunks(3).all(|p| p == [200, 100, 50]));
}

#[test]
fn refuses_garbage_truncation_and_bombs_naming_the_file() {
    let err = decoder(4, 4)
        .decode_bytes(b"hello, I am text", Path::new("x/fake.png"))
        .unwrap_err();
    assert!(err.to_string().contains("x/fake.png"), "{err}");

    let data = [9u8; 64 * 64 * 3];
    let png = encode_png(64, 64, image::ExtendedColorType::Rgb8, &data);
    let err = decoder(4, 4)
        .decode_bytes(&png[..png.len() / 2], Path::new("cut.png"))
        .unwrap_err();
    assert!(matches!(err, ReaderError::Decode { .. }), "{err}");

    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .write_image(&data, 64, 64, image::ExtendedColorType::Rgb8)
        .unwrap();
    assert!(
        decoder(4, 4)
            .decode_bytes(&jpeg, Path::new("whole.jpg"))
            .is_ok()
    );
    let err = decoder(4, 4)
        .decode_bytes(&jpeg[..jpeg.len() - 40], Path::new("cut.jpg"))
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    let bomb = decoder(4, 4).with_limits(DecodeLimits {
        max_pixels: 1000,
        ..DecodeLimits::default()
    });
    let err = bomb.decode_bytes(&png, Path::new("bomb.png")).unwrap_err();
    assert!(
        matches!(
            err,
            ReaderError::TooLarge {
                width: 64,
                height: 64,
                ..
            }
        ),
        "{err}"
    );
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"not decoded by scan").unwrap();
}

#[test]
fn follows_image_folder_order_and_ignores_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in [
        "dogs/b.JPG",
        "dogs/a.png",
        "dogs/sub/z.webp",
        "dogs/sub.x/c.bmp",
        "cats/x.tiff",
        "cats/notes.txt",
        "cats/.hidden.png",
        "cats/.cache/y.png",
        "cats/sound.wav",
        "Zebras/q.ppm",
        "readme.md",
    ] {
        touch(&root.join(rel));
    }
    let dataset = Dataset::scan(root).unwrap();
    assert_eq!(dataset.classes().names(), ["Zebras", "cats", "dogs"]);
    let listed: Vec<(String, usize)> = dataset
        .images()
        .iter()
        .map(|e| {
            (
                e.path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                e.label,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("Zebras/q.ppm".to_owned(), 0),
            ("cats/x.tiff".to_owned(), 1),
            ("dogs/a.png".to_owned(), 2),
            ("dogs/b.JPG".to_owned(), 2),
            ("dogs/sub/z.webp".to_owned(), 2),
            ("dogs/sub.x/c.bmp".to_owned(), 2),
        ]
    );
    // notes.txt, .hidden.png, .cache (folder, not entered), sound.wav, readme.md
    assert_eq!(dataset.ignored_count(), 5);
    assert!(
        dataset
            .ignored_examples()
            .iter()
            .any(|p| p.ends_with("cats/.cache"))
    );
    assert_eq!(dataset.counts_per_class(), [1, 1, 4]);
}

#[test]
fn names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Dataset::scan(&missing).unwrap_err();
    assert!(matches!(err, ReaderError::MissingRoot { .. }), "{err}");
    assert!(err.to_string().contains("nope"));

    let err = Dataset::scan(dir.path()).unwrap_err();
    assert!(matches!(err, ReaderError::NoClasses { .. }), "{err}");

    touch(&dir.path().join("a/1.png"));
    touch(&dir.path().join("b/readme.txt"));
    let err = Dataset::scan(dir.path()).unwrap_err();
    assert!(err.to_string().contains("has no images"), "{err}");
    assert!(err.to_string().contains('b'), "{err}");
}

#[test]
fn decoding_threads_share_one_memory_budget() {
    let pixels: Vec<u8> = (0..64 * 64 * 3).map(|i| (i % 253) as u8).collect();
    let png = encode_png(64, 64, image::ExtendedColorType::Rgb8, &pixels);
    // An 8-bit RGB image needs its decoded buffer plus the RGB copy: 6 bytes a pixel.
    let one_image = 64 * 64 * 6;
    let limits = |budget_bytes| DecodeLimits {
        budget_bytes,
        ..DecodeLimits::default()
    };
    let shared = decoder(8, 8).with_limits(limits(one_image));
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let (decoder, png) = (shared.clone(), &png);
            scope.spawn(move || {
                for i in 0..4 {
                    let name = format!("t{thread}_{i}.png");
                    decoder.decode_bytes(png, Path::new(&name)).unwrap();
                }
            });
        }
    });
    assert_eq!(
        shared.peak_decode_memory(),
        one_image,
        "eight threads, one image decoding at a time"
    );

    let err = decoder(8, 8)
        .with_limits(limits(one_image - 1))
        .decode_bytes(&png, Path::new("big.png"))
        .unwrap_err();
    assert!(matches!(err, ReaderError::OverBudget { .. }), "{err}");
    assert!(err.to_string().contains("big.png"), "{err}");
    assert!(err.to_string().contains("decode budget"), "{err}");
}

/// `--alpha COLOR` against PIL (fixtures from tools/golden/make_alpha_golden.py): an RGBA and a
/// grey+alpha image pasted onto white, black and #3366cc with their alpha as the mask, decoded
/// at their own size (no resize): byte for byte.
#[test]
fn composites_alpha_onto_a_colour_exactly_as_pil() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let golden = root.join("tests/fixtures/golden/alpha");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(golden.join("manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let source = root.join(case["source"].as_str().unwrap());
        let alpha: Alpha = case["alpha"].as_str().unwrap().parse().unwrap();
        let reference = image::open(golden.join(case["file"].as_str().unwrap()))
            .unwrap()
            .into_rgb8();
        let size = ImageSize::new(reference.width(), reference.height()).unwrap();
        let ours = Decoder::new(size)
            .with_alpha(alpha)
            .decode(&source)
            .unwrap();
        assert_eq!(ours.pixels(), reference.as_raw().as_slice(), "{case}");
        // Dropping keeps the colours under the transparency: not the composite.
        let dropped = Decoder::new(size).decode(&source).unwrap();
        assert_ne!(dropped.pixels(), ours.pixels(), "{case}");
    }
    assert_eq!(
        "#3366CC".parse::<Alpha>(),
        Ok(Alpha::Composite([0x33, 0x66, 0xcc]))
    );
    assert_eq!(Alpha::Composite([0x33, 0x66, 0xcc]).to_string(), "#3366cc");
    for bad in ["grey", "#12345", "#gggggg", ""] {
        let error = bad.parse::<Alpha>().unwrap_err();
        assert!(
            error.contains("expected drop, white, black or #RRGGBB"),
            "{error}"
        );
    }
}
