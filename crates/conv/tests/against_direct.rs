//! Every kernel of the engine against a naive direct convolution (and naive pools) on odd,
//! non-square sizes that put the kernels over every edge; every epilogue; and the same bits
//! at any thread count and alone or in a batch.

use drift_conv::{
    Activations, Conv2d, ConvWeights, Epilogue, GatherConv, WinogradConv, WinogradTile, Workspace,
    global_average, max_pool_3x3_s2, pooled_side,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_activations(
    batch: usize,
    (height, width): (usize, usize),
    channels: usize,
    seed: u64,
) -> Activations {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Activations {
        values: (0..batch * height * width * channels)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect(),
        batch,
        height,
        width,
        channels,
    }
}

fn random_weights(
    (out_channels, in_channels, kernel): (usize, usize, usize),
    stride: usize,
    padding: usize,
    seed: u64,
) -> ConvWeights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fan_in = (in_channels * kernel * kernel) as f32;
    ConvWeights {
        weight: (0..out_channels * in_channels * kernel * kernel)
            .map(|_| (rng.random::<f32>() - 0.5) / fan_in.sqrt())
            .collect(),
        shape: [out_channels, in_channels, kernel, kernel],
        bias: (0..out_channels)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect(),
        stride,
        padding,
    }
}

/// The textbook convolution in f64, PyTorch's semantics (zero padding, floor of the output
/// side), then the epilogue.
fn direct(
    x: &Activations,
    w: &ConvWeights,
    shortcut: Option<&Activations>,
    relu: bool,
) -> Vec<f64> {
    let [out_c, in_c, k, _] = w.shape;
    let side = |input: usize| (input + 2 * w.padding - k) / w.stride + 1;
    let (out_h, out_w) = (side(x.height), side(x.width));
    let mut out = Vec::with_capacity(x.batch * out_h * out_w * out_c);
    for image in 0..x.batch {
        for oy in 0..out_h {
            for ox in 0..out_w {
                for o in 0..out_c {
                    let mut sum = f64::from(w.bias[o]);
                    for dy in 0..k {
                        for dx in 0..k {
                            let y = (oy * w.stride + dy) as isize - w.padding as isize;
                            let xx = (ox * w.stride + dx) as isize - w.padding as isize;
                            if y < 0 || xx < 0 || y >= x.height as isize || xx >= x.width as isize {
                                continue;
                            }
                            let pixel = (image * x.height + y as usize) * x.width + xx as usize;
                            for c in 0..in_c {
                                let value = f64::from(x.values[pixel * in_c + c]);
                                let weight =
                                    f64::from(w.weight[((o * in_c + c) * k + dy) * k + dx]);
                                sum += value * weight;
                            }
                        }
                    }
                    let at = out.len();
                    if let Some(shortcut) = shortcut {
                        sum += f64::from(shortcut.values[at]);
                    }
                    out.push(if relu { sum.max(0.0) } else { sum });
                }
            }
        }
    }
    out
}

/// Asserts `got` is `expected` up to float rounding (relative to the largest value).
fn assert_close(got: &Activations, expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.values.len(), expected.len(), "{what}: output size");
    let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs())).max(1.0);
    assert!(
        expected.iter().any(|&v| v > 0.01) && expected.iter().any(|&v| v <= 0.0),
        "{what}: the test data should give positive and clipped values"
    );
    for (i, (&a, &b)) in got.values.iter().zip(expected).enumerate() {
        assert!(
            (f64::from(a) - b).abs() <= tolerance * scale,
            "{what}: value {i}: {a} against {b}"
        );
    }
}

/// Each epilogue, with the direct convolution's version of it.
fn epilogues(
    shortcut: &Activations,
) -> [(Epilogue<'_>, Option<&Activations>, bool, &'static str); 3] {
    [
        (Epilogue::Linear, None, false, "linear"),
        (Epilogue::Relu, None, true, "relu"),
        (
            Epilogue::AddRelu(shortcut),
            Some(shortcut),
            true,
            "add+relu",
        ),
    ]
}

fn check_conv(conv: &Conv2d, weights: &ConvWeights, sizes: &[(usize, usize)], tolerance: f64) {
    let [out_c, in_c, k, _] = weights.shape;
    for (i, &size) in sizes.iter().enumerate() {
        let x = random_activations(2, size, in_c, 100 + i as u64);
        let side = |input: usize| (input + 2 * weights.padding - k) / weights.stride + 1;
        let shortcut = random_activations(2, (side(size.0), side(size.1)), out_c, 200 + i as u64);
        for (epilogue, direct_shortcut, relu, name) in epilogues(&shortcut) {
            let got = conv.forward(&x, epilogue, &mut Workspace::default());
            assert_eq!(
                (got.batch, got.height, got.width, got.channels),
                (2, side(size.0), side(size.1), out_c)
            );
            let expected = direct(&x, weights, direct_shortcut, relu);
            let what = format!("{} on {size:?}, {name}", conv.describe());
            assert_close(&got, &expected, tolerance, &what);
        }
    }
}

#[test]
fn gathered_convolutions_compute_the_direct_convolution() {
    // A 1x1 stride-2 shortcut, a 3x3 stride-2, a 3x3 stride-1 on 20 channels (not Winograd's
    // multiple of 16) and a 5x5 stride-3.
    for (shape, stride, padding) in [
        ((64, 32, 1), 2, 0),
        ((64, 32, 3), 2, 1),
        ((64, 20, 3), 1, 1),
        ((128, 8, 5), 3, 2),
    ] {
        let weights = random_weights(shape, stride, padding, 1);
        let conv = Conv2d::new(weights.clone());
        assert!(matches!(conv, Conv2d::Gather(_)), "{shape:?}/{stride}");
        check_conv(&conv, &weights, &[(9, 14), (17, 6), (1, 1)], 1e-5);
    }
}

#[test]
fn in_place_receptive_fields_compute_the_direct_convolution() {
    // The stem's shape (3 channels, read in place) and a stride-1 one.
    for (shape, stride, padding) in [((64, 3, 7), 2, 3), ((64, 3, 3), 1, 1)] {
        let weights = random_weights(shape, stride, padding, 2);
        let conv = Conv2d::new(weights.clone());
        assert!(
            conv.describe().ends_with("read in place"),
            "{}",
            conv.describe()
        );
        check_conv(&conv, &weights, &[(37, 30), (9, 14), (4, 3)], 1e-5);
    }
}

#[test]
fn winograd_f4x4_and_f2x2_compute_the_direct_convolution() {
    for (channels, tile) in [
        ((64, 32), WinogradTile::F4x4),
        ((64, 48), WinogradTile::F2x2),
        ((128, 16), WinogradTile::F4x4),
    ] {
        let weights = random_weights((channels.0, channels.1, 3), 1, 1, 3);
        assert!(WinogradConv::applies(&weights));
        let conv = Conv2d::Winograd(WinogradConv::with_tile(weights.clone(), tile));
        // Sizes that are not multiples of the tile: the last tiles overhang the image.
        check_conv(&conv, &weights, &[(13, 7), (5, 10), (2, 2), (1, 1)], 1e-4);
    }
    // The automatic choice: F(2x2) from 512 input channels on.
    let big = random_weights((64, 512, 3), 1, 1, 4);
    assert!(Conv2d::new(big).describe().ends_with("F(2x2, 3x3)"));
    let small = random_weights((64, 64, 3), 1, 1, 4);
    assert!(Conv2d::new(small).describe().ends_with("F(4x4, 3x3)"));
}

#[test]
fn transformed_filters_are_as_large_as_the_algorithm_says() {
    let weights = random_weights((64, 64, 3), 1, 1, 5);
    let filter_bytes = weights.weight.len() * 4;
    let f4 = WinogradConv::with_tile(weights.clone(), WinogradTile::F4x4);
    let f2 = WinogradConv::with_tile(weights, WinogradTile::F2x2);
    assert_eq!(f4.filter_bytes(), filter_bytes * 36 / 9);
    assert_eq!(f2.filter_bytes(), filter_bytes * 16 / 9);
}

#[test]
fn outputs_have_the_same_bits_at_any_thread_count_and_batch() {
    let convs = [
        Conv2d::new(random_weights((64, 3, 7), 2, 3, 6)),
        Conv2d::new(random_weights((64, 32, 3), 2, 1, 6)),
        Conv2d::Winograd(WinogradConv::with_tile(
            random_weights((64, 32, 3), 1, 1, 6),
            WinogradTile::F4x4,
        )),
        Conv2d::Winograd(WinogradConv::with_tile(
            random_weights((64, 32, 3), 1, 1, 6),
            WinogradTile::F2x2,
        )),
    ];
    for conv in &convs {
        let in_channels = match conv {
            Conv2d::Gather(conv) => conv.in_channels(),
            Conv2d::Winograd(conv) => conv.in_channels(),
        };
        let x = random_activations(5, (23, 19), in_channels, 7);
        let on_threads = |threads: usize, x: &Activations| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| conv.forward(x, Epilogue::Relu, &mut Workspace::default()))
        };
        let one = on_threads(1, &x);
        for threads in [2, 3, 8] {
            assert_eq!(
                on_threads(threads, &x).values,
                one.values,
                "{} threads",
                threads
            );
        }
        // Image 3 alone gives the bits it got in the batch of five.
        let per_image = x.values.len() / x.batch;
        let alone = Activations {
            values: x.values[3 * per_image..4 * per_image].to_vec(),
            batch: 1,
            ..x.clone()
        };
        let out_per_image = one.values.len() / one.batch;
        assert_eq!(
            on_threads(2, &alone).values,
            one.values[3 * out_per_image..4 * out_per_image],
            "{}",
            conv.describe()
        );
    }
}

#[test]
fn a_workspace_reused_across_layers_and_sizes_changes_nothing() {
    let conv = Conv2d::new(random_weights((64, 64, 3), 1, 1, 8));
    let mut workspace = Workspace::default();
    let big = random_activations(3, (30, 30), 64, 9);
    let small = random_activations(1, (5, 7), 64, 10);
    let first = conv.forward(&small, Epilogue::Relu, &mut Workspace::default());
    // Dirty the workspace with a larger layer, recycle its output, then run the small one.
    let out = conv.forward(&big, Epilogue::Relu, &mut workspace);
    workspace.recycle(out);
    let again = conv.forward(&small, Epilogue::Relu, &mut workspace);
    assert_eq!(again.values, first.values);
}

#[test]
fn gather_convolution_runs_a_range_of_images_alone() {
    let weights = random_weights((64, 16, 3), 2, 1, 11);
    let conv = GatherConv::new(weights);
    let x = random_activations(4, (11, 9), 16, 12);
    let mut workspace = Workspace::default();
    let all = conv.forward(&x, Epilogue::Linear, &mut workspace);
    let middle = conv.forward_images(&x, 1..3, Epilogue::Linear, &mut workspace);
    let per_image = all.values.len() / 4;
    assert_eq!(middle.batch, 2);
    assert_eq!(middle.values, all.values[per_image..3 * per_image]);
}

#[test]
fn pools_compute_what_the_naive_pools_compute() {
    for size in [(17, 12), (2, 3), (1, 1), (8, 8)] {
        let x = random_activations(2, size, 5, 13);
        let (out_h, out_w) = (pooled_side(size.0), pooled_side(size.1));
        let mut pooled = vec![0f32; 2 * out_h * out_w * 5];
        max_pool_3x3_s2(&x, &mut pooled);
        let mut at = 0;
        for image in 0..2 {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    for c in 0..5 {
                        let mut max = f32::NEG_INFINITY;
                        for y in (oy * 2).saturating_sub(1)..=(oy * 2 + 1) {
                            for xx in (ox * 2).saturating_sub(1)..=(ox * 2 + 1) {
                                if y < size.0 && xx < size.1 {
                                    let pixel = (image * size.0 + y) * size.1 + xx;
                                    max = max.max(x.values[pixel * 5 + c]);
                                }
                            }
                        }
                        assert_eq!(pooled[at], max, "{size:?} ({image}, {oy}, {ox}, {c})");
                        at += 1;
                    }
                }
            }
        }
        let means = global_average(&x);
        for image in 0..2 {
            for c in 0..5 {
                let pixels = size.0 * size.1;
                let sum: f64 = (0..pixels)
                    .map(|p| f64::from(x.values[(image * pixels + p) * 5 + c]))
                    .sum();
                let expected = sum / pixels as f64;
                assert!((f64::from(means[image * 5 + c]) - expected).abs() < 1e-5);
            }
        }
    }
}
