//! Images/s of the CPU embedder alone at batch 32 on 224x224 images (seeded weights, seeded
//! pixels): the quick measurement behind a kernel change, without building the whole bench.
//! `cargo run --release -p drift-embedder --example embed_speed [THREADS] [BATCHES]`.
use std::time::Instant;

use drift_core::{ImageSize, RgbImage8};
use drift_embedder::{Embedder, EmbedderOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let size = ImageSize::new(224, 224).expect("a valid size");
    let images = drift_embedder::synthetic_images(32, size);
    let refs: Vec<&RgbImage8> = images.iter().collect();
    let embedder = Embedder::new(
        &drift_embedder::synthetic_state_dict(18),
        EmbedderOptions {
            threads,
            ..Default::default()
        },
    )
    .expect("the seeded weights load");
    embedder.embed(&refs).expect("warm-up"); // warm-up
    let mut rates = Vec::new();
    for _ in 0..batches {
        let started = Instant::now();
        std::hint::black_box(embedder.embed(&refs).expect("a batch"));
        rates.push(32.0 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{}, {threads} threads, batch 32: median {:.1} images/s (min {:.1}, max {:.1})",
        embedder.device_description(),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
}
