//! Where a batch's time goes, layer by layer: the median over several batches of 32 224x224
//! images (seeded weights, seeded pixels), as milliseconds and shares of the whole. Compare with
//! ONNX Runtime's own per-node profile: `python tools/bench/ort_resnet18.py --profile`.
//! `cargo run --release -p drift-embedder --example embed_profile [THREADS] [BATCHES]`.
use drift_core::{ImageSize, RgbImage8};
use drift_embedder::{Embedder, EmbedderOptions, LayerTime};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6).max(1);
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
    embedder.embed(&refs).expect("warm-up");
    let runs: Vec<Vec<LayerTime>> = (0..batches)
        .map(|_| embedder.embed_timed(&refs).expect("a batch").1)
        .collect();
    let median = |layer: usize| {
        let mut seconds: Vec<f64> = runs.iter().map(|run| run[layer].seconds).collect();
        seconds.sort_by(f64::total_cmp);
        seconds[seconds.len() / 2]
    };
    let medians: Vec<f64> = (0..runs[0].len()).map(median).collect();
    let total: f64 = medians.iter().sum();
    println!(
        "{}, {threads} threads, batch 32, median of {batches}:",
        embedder.device_description()
    );
    for (time, seconds) in runs[0].iter().zip(&medians) {
        println!(
            "{:>58}: {:6.1} ms {:5.1}%",
            time.layer,
            seconds * 1e3,
            100.0 * seconds / total
        );
    }
    println!(
        "{:>58}: {:6.1} ms ({:.1} images/s)",
        "total",
        total * 1e3,
        32.0 / total
    );
}
