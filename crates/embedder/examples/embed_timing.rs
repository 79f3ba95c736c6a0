//! Times Embedder::embed on batches of 32 synthetic 224x224 images (a profiling aid).
use std::time::Instant;

use drift_core::{ImageSize, RgbImage8};
use drift_embedder::{Embedder, EmbedderOptions, synthetic_state_dict};

fn main() {
    let embedder = Embedder::new(&synthetic_state_dict(18), EmbedderOptions::default()).unwrap();
    let size = ImageSize::new(224, 224).unwrap();
    let images: Vec<RgbImage8> = (0..32u32)
        .map(|i| {
            let pixels = (0..224 * 224 * 3u32)
                .map(|p| (p.wrapping_mul(2_654_435_761).wrapping_add(i * 97) >> 13) as u8)
                .collect();
            RgbImage8::from_pixels(size, pixels).unwrap()
        })
        .collect();
    let batch: Vec<&RgbImage8> = images.iter().collect();
    embedder.embed(&batch).unwrap();
    let reps = 4;
    let started = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(embedder.embed(&batch).unwrap());
    }
    let seconds = started.elapsed().as_secs_f64() / f64::from(reps);
    println!(
        "{:.1} ms per batch of 32, {:.1} images/s",
        seconds * 1e3,
        32.0 / seconds
    );
}
