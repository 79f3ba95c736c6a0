//! A deterministic, generated demo dataset, so that the tool runs on a fresh machine with no
//! input of the user's.
//!
//! The images are synthetic, not photographs: each class is a procedural scene (sky, forest,
//! sunset, city at night) built from gradients, fractal value noise and shapes, so that they have
//! photo-like smooth regions, texture and edges for transforms and embeddings to act on. They are
//! generated from a seed, need no licence, and are byte-identical on every machine. Sizes vary
//! per image and alternate between JPEG and PNG, as real datasets do.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, RgbImage};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The demo's classes, in label order.
pub const CLASSES: [&str; 4] = ["city_night", "forest", "sky", "sunset"];

/// Writes `images_per_class` images per class under `root/<class>/`, sides between 160 and 480
/// pixels. Same arguments, same bytes.
pub fn write_dataset(root: &Path, images_per_class: usize, seed: u64) -> std::io::Result<()> {
    write_dataset_sized(root, images_per_class, seed, (160, 480))
}

/// As [`write_dataset`], with sides drawn from `sides.0..=sides.1`.
pub fn write_dataset_sized(
    root: &Path,
    images_per_class: usize,
    seed: u64,
    sides: (u32, u32),
) -> std::io::Result<()> {
    for (class_index, class) in CLASSES.iter().enumerate() {
        let folder = root.join(class);
        std::fs::create_dir_all(&folder)?;
        for i in 0..images_per_class {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((class_index as u64) << 32 | i as u64));
            let width = rng.random_range(sides.0..=sides.1);
            let height = rng.random_range(sides.0..=sides.1);
            let image = scene(class_index, width, height, &mut rng);
            let stem = folder.join(format!("{class}_{i:04}"));
            if i % 2 == 0 {
                let file =
                    std::io::BufWriter::new(std::fs::File::create(stem.with_extension("jpg"))?);
                JpegEncoder::new_with_quality(file, 90)
                    .write_image(&image, width, height, image::ExtendedColorType::Rgb8)
                    .map_err(std::io::Error::other)?;
            } else {
                image
                    .save_with_format(stem.with_extension("png"), image::ImageFormat::Png)
                    .map_err(std::io::Error::other)?;
            }
        }
    }
    Ok(())
}

/// Smooth random field in [0, 1]: value noise on a lattice, bilinearly interpolated, 3 octaves.
struct ValueNoise {
    lattice: Vec<f32>,
    side: usize,
}

impl ValueNoise {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        let side = 64;
        Self {
            lattice: (0..side * side).map(|_| rng.random::<f32>()).collect(),
            side,
        }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let mut total = 0.0;
        let mut amplitude = 0.5;
        let mut frequency = 1.0;
        for _ in 0..3 {
            total += amplitude * self.octave(x * frequency, y * frequency);
            amplitude *= 0.5;
            frequency *= 2.0;
        }
        total / 0.875
    }

    fn octave(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x.floor(), y.floor());
        let (tx, ty) = (x - fx, y - fy);
        let n = self.side;
        let cell = |i: f32, j: f32| self.lattice[(j as usize % n) * n + (i as usize % n)];
        let top = cell(fx, fy) * (1.0 - tx) + cell(fx + 1.0, fy) * tx;
        let bottom = cell(fx, fy + 1.0) * (1.0 - tx) + cell(fx + 1.0, fy + 1.0) * tx;
        top * (1.0 - ty) + bottom * ty
    }
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [0, 1, 2].map(|c| a[c] + (b[c] - a[c]) * t.clamp(0.0, 1.0))
}

fn scene(class_index: usize, width: u32, height: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let noise = ValueNoise::new(rng);
    let scale = rng.random_range(4.0..10.0f32) / width.max(height) as f32;
    let hue_jitter = rng.random_range(-0.08..0.08f32);
    let (cx, cy, radius) = (
        rng.random_range(0.2..0.8f32),
        rng.random_range(0.2..0.6f32),
        rng.random_range(0.05..0.15f32),
    );
    let horizon = rng.random_range(0.55..0.8f32);
    let windows: Vec<(f32, f32, f32)> = (0..12)
        .map(|_| {
            (
                rng.random_range(0.0..1.0),
                rng.random_range(0.3..0.9),
                rng.random_range(0.05..0.12),
            )
        })
        .collect();
    RgbImage::from_fn(width, height, |x, y| {
        let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
        let n = noise.at(x as f32 * scale * 1.5, y as f32 * scale * 1.5);
        let rgb = match class_index {
            // city at night: dark sky, blocky buildings with lit windows
            0 => {
                let building = windows
                    .iter()
                    .any(|&(left, top, w)| u >= left && u < left + w && v >= top);
                if building {
                    let lit = ((u * 60.0) as u32 + (v * 80.0) as u32 * 7).is_multiple_of(5);
                    if lit {
                        [0.95, 0.85, 0.45]
                    } else {
                        mix([0.08, 0.08, 0.12], [0.2, 0.2, 0.25], n)
                    }
                } else {
                    mix([0.02, 0.02, 0.1], [0.15, 0.1, 0.3], v + 0.3 * n)
                }
            }
            // forest: green texture, dark trunks
            1 => {
                let trunk = ((u * 9.0 + 0.3 * n).fract() < 0.08) && v > 0.35;
                if trunk {
                    [0.25, 0.16, 0.08]
                } else {
                    mix([0.05, 0.25, 0.05], [0.45, 0.7, 0.2], n * 1.2 - 0.1)
                }
            }
            // sky: blue gradient with clouds
            2 => {
                let sky = mix([0.2, 0.45, 0.9], [0.75, 0.88, 1.0], v);
                mix(sky, [1.0, 1.0, 1.0], (n - 0.45) * 3.0)
            }
            // sunset: warm gradient, a sun disc, dark ground below the horizon
            _ => {
                let d = ((u - cx).powi(2) + (v - cy).powi(2)).sqrt();
                if v > horizon {
                    mix([0.1, 0.05, 0.05], [0.25, 0.12, 0.1], n)
                } else if d < radius {
                    [1.0, 0.9, 0.5]
                } else {
                    mix(
                        [0.95, 0.5, 0.15],
                        [0.4, 0.15, 0.45],
                        v / horizon + 0.2 * (n - 0.5),
                    )
                }
            }
        };
        let [r, g, b] = rgb;
        let jitter = [r + hue_jitter, g, b - hue_jitter];
        image::Rgb(jitter.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_dataset(a.path(), 2, 3).unwrap();
        write_dataset(b.path(), 2, 3).unwrap();
        for class in CLASSES {
            for name in [format!("{class}_0000.jpg"), format!("{class}_0001.png")] {
                let left = std::fs::read(a.path().join(class).join(&name)).unwrap();
                let right = std::fs::read(b.path().join(class).join(&name)).unwrap();
                assert_eq!(left, right, "{name}");
                assert!(image::load_from_memory(&left).is_ok());
            }
        }
    }
}
