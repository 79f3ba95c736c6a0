//! Each transform alone (SPEC's at level 0.5, the ImageNet-C corruptions at severity 3, the
//! peers' settings), and SPEC's seven-transform chain, on one thread at 224x224 (8-bit in and
//! out, the conversions included): images per second, the best of five passes over 64 seeded
//! images. `cargo run --release -p drift-transformer --example transform_speed [NAME]`. The
//! figures and their CPU go in docs/MEASUREMENTS.md; `cargo xtask bench` is the full record.

use std::time::Instant;

use drift_core::{ImageSize, RgbImage8};
use drift_transformer::{TransformChain, TransformKind};
use rand::{RngExt, SeedableRng};

fn main() {
    let size = ImageSize::new(224, 224).expect("a valid size");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let images: Vec<RgbImage8> = (0..64)
        .map(|_| {
            // Smooth gradients with noise: closer to photographs than white noise.
            let (a, b): (u8, u8) = (rng.random(), rng.random());
            // The noise from a multiplicative hash, not a generator call per value, so that
            // making the images stays small beside the transforms in a profile.
            let salt: u32 = rng.random();
            let pixels = (0..size.pixel_count() * 3)
                .map(|i| {
                    let base = (i / 3 % 224) as u8 / 2 + (i / 3 / 224) as u8 / 3;
                    let noise = ((i as u32 ^ salt).wrapping_mul(2_654_435_761) >> 29) as u8;
                    base.wrapping_add(if i % 3 == 0 { a } else { b })
                        .wrapping_add(noise)
                })
                .collect();
            RgbImage8::from_pixels(size, pixels).expect("3 bytes per pixel")
        })
        .collect();
    let mut chains: Vec<(String, TransformChain)> = TransformKind::all()
        .iter()
        .map(|kind| {
            let spec = match kind.corruption() {
                Some(_) => format!("{kind}@3"),
                None => format!("{kind}=0.5"),
            };
            (
                kind.name().to_owned(),
                spec.parse().expect("a registered transform"),
            )
        })
        .collect();
    chains.push((
        "seven transforms".to_owned(),
        "rotate=0.5,brightness=0.5,contrast=0.5,saturation=0.5,hue=0.5,gaussian_blur=0.5,\
         gaussian_noise=0.5"
            .parse()
            .expect("valid"),
    ));
    // An argument keeps only the row of that name, or else the rows whose names contain it (for
    // profiling one transform).
    let only = std::env::args().nth(1).unwrap_or_default();
    if chains.iter().any(|(name, _)| *name == only) {
        chains.retain(|(name, _)| *name == only);
    } else {
        chains.retain(|(name, _)| name.contains(&only));
    }
    println!("| transform (level 0.5 or severity 3, 1 thread, 224x224) | images/s |");
    println!("|---|---:|");
    for (name, chain) in &chains {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            for (i, image) in images.iter().enumerate() {
                std::hint::black_box(chain.apply(image.clone(), 1, i as u64));
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        println!("| {name} | {:.0} |", images.len() as f64 / best);
    }
}
