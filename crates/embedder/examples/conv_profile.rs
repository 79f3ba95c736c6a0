//! Times each convolution shape of ResNet18 at batch 32 on burn flex (a profiling aid).
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, activation::relu};

fn main() {
    let device = Device::flex();
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(32);
    // (name, c_in, c_out, k, stride, pad, h_in, count in the network)
    let shapes = [
        ("stem 7x7/2", 3, 64, 7, 2, 3, 224, 1),
        ("l1 3x3", 64, 64, 3, 1, 1, 56, 4),
        ("l2 3x3/2", 64, 128, 3, 2, 1, 56, 1),
        ("l2 3x3", 128, 128, 3, 1, 1, 28, 3),
        ("l2 ds 1x1/2", 64, 128, 1, 2, 0, 56, 1),
        ("l3 3x3/2", 128, 256, 3, 2, 1, 28, 1),
        ("l3 3x3", 256, 256, 3, 1, 1, 14, 3),
        ("l3 ds 1x1/2", 128, 256, 1, 2, 0, 28, 1),
        ("l4 3x3/2", 256, 512, 3, 2, 1, 14, 1),
        ("l4 3x3", 512, 512, 3, 1, 1, 7, 3),
        ("l4 ds 1x1/2", 256, 512, 1, 2, 0, 14, 1),
    ];
    let mut total = 0.0;
    for (name, c_in, c_out, k, stride, pad, h, count) in shapes {
        let x = Tensor::<4>::random([batch, c_in, h, h], Distribution::Default, &device);
        let w = Tensor::<4>::random([c_out, c_in, k, k], Distribution::Default, &device);
        let b = Tensor::<1>::random([c_out], Distribution::Default, &device);
        let run = || {
            let y = conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
            );
            relu(y).into_data()
        };
        run();
        let started = Instant::now();
        let reps = 3;
        for _ in 0..reps {
            std::hint::black_box(run());
        }
        let seconds = started.elapsed().as_secs_f64() / f64::from(reps);
        total += seconds * f64::from(count);
        println!("{name:>14}: {:7.1} ms x {count}", seconds * 1e3);
    }
    // Alternatives: the stem as unfold + matmul, a strided 1x1 as subsample + 1x1.
    let time = |name: &str, f: &dyn Fn() -> TensorData| {
        f();
        let started = Instant::now();
        for _ in 0..3 {
            std::hint::black_box(f());
        }
        println!(
            "{name:>14}: {:7.1} ms",
            started.elapsed().as_secs_f64() / 3.0 * 1e3
        );
    };
    let x = Tensor::<4>::random([batch, 3, 224, 224], Distribution::Default, &device);
    let w = Tensor::<4>::random([64, 3, 7, 7], Distribution::Default, &device);
    time("stem unfold", &|| {
        let cols = burn::tensor::module::unfold4d(
            x.clone(),
            [7, 7],
            burn::tensor::ops::UnfoldOptions::new([2, 2], [3, 3], [1, 1]),
        ); // [b, 147, 12544]
        let w2 = w.clone().reshape([1, 64, 147]);
        let y = w2.matmul(cols); // [b, 64, 12544]
        relu(y.reshape([batch, 64, 112, 112])).into_data()
    });
    let z = Tensor::<4>::random([batch, 12, 115, 115], Distribution::Default, &device);
    let wz = Tensor::<4>::random([64, 12, 4, 4], Distribution::Default, &device);
    time("stem s2d 4x4", &|| {
        relu(conv2d(
            z.clone(),
            wz.clone(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        ))
        .into_data()
    });
    let x = Tensor::<4>::random([batch, 64, 56, 56], Distribution::Default, &device);
    let w = Tensor::<4>::random([128, 64, 1, 1], Distribution::Default, &device);
    time("ds subsample", &|| {
        let sub = x.clone().slice(burn::tensor::s![.., .., 0..;2, 0..;2]);
        conv2d(
            sub,
            w.clone(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        )
        .into_data()
    });
    println!(
        "total conv time per batch of {batch}: {:.0} ms ({:.1} img/s)",
        total * 1e3,
        batch as f64 / total
    );
}
