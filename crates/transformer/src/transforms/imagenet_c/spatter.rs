//! `imagenet_c:spatter`: a liquid layer (a normal field, blurred, thresholded) splashed on the
//! image as water (severities 1-3: embossed pale turquoise drops) or mud (4-5: brown blots).
//!
//! Between severities 3 and 4 the package switches branch. Our levels cross-fade: at s in
//! (3, 4) the image is `(4 - s) water(3) + (s - 3) mud(4)` (both from the same field, which
//! severities 3 and 4 draw alike), so the drift grows continuously from water to mud.

use std::cell::RefCell;

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::gaussian::{Border, gaussian_filter};
use crate::imagenet_c::opencv::{
    box_blur_f32, box_blur_u8, canny, distance_transform, equalize_histogram, filter_3x3_u8,
};
use crate::imagenet_c::{
    Corruption, Draws, Scale, in_lanes, keep_scratch, store_values, take_scratch,
};
use crate::registry::{ParamColumn, Params, severity_value};

/// The field's mean at severities 0 (identity) to 5.
const LOC: [f64; 6] = [0.65, 0.65, 0.65, 0.65, 0.65, 0.67];
/// The field's standard deviation.
const SCALE: [f64; 6] = [0.3, 0.3, 0.3, 0.3, 0.3, 0.4];
/// The water's field blur (its value at 3 holds through the cross-fade).
const WATER_SIGMA: [f64; 6] = [4.0, 4.0, 3.0, 2.0, 2.0, 2.0];
/// The water's threshold on the blurred field.
const WATER_THRESHOLD: [f64; 6] = [0.69, 0.69, 0.68, 0.68, 0.68, 0.68];
/// The water's intensity: 0 at severity 0 makes no water (the package's row at 1 with it).
const INTENSITY: [f64; 6] = [0.0, 0.6, 0.6, 0.5, 0.5, 0.5];
/// The mud's share of the image: 0 through severity 3, 1 from 4.
const MUD_SHARE: [f64; 6] = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0];

/// The mud's field blur, threshold and blot blur: the same at severities 4 and 5.
const MUD_SIGMA: f64 = 1.0;
const MUD_THRESHOLD: f64 = 0.65;
const MUD_BLUR: f64 = 1.5;

/// Water's pale turquoise and mud's brown, in bytes (RGB).
const WATER: [f64; 3] = [175.0, 238.0, 238.0];
const MUD: [f64; 3] = [63.0, 42.0, 20.0];

/// The emboss kernel the water's distance map goes through.
const EMBOSS: [[i32; 3]; 3] = [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]];

pub(crate) struct Spatter;

impl Corruption for Spatter {
    fn name(&self) -> &'static str {
        "imagenet_c:spatter"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C spatter at severity 5L: a N(loc, scale) field blurred by sigma; water (s <= 3) \
         where it passes t, embossed turquoise at intensity i; mud (s >= 4) where the sigma-1 \
         blur passes .65, blurred by 1.5, brown; cross-faded for s in (3, 4); (loc, scale, \
         sigma, t, i) = (.65, .3, 4, .69, .6), (.65, .3, 3, .68, .6), (.65, .3, 2, .68, .5) at \
         severities 1-3 (i = 0 at 0), (loc, scale) = (.65, .3), (.67, .4) at 4, 5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "loc",
                meaning: "the liquid field's mean",
            },
            ParamColumn {
                name: "scale",
                meaning: "the liquid field's standard deviation",
            },
            ParamColumn {
                name: "sigma",
                meaning: "the water's field blur (null for mud alone)",
            },
            ParamColumn {
                name: "threshold",
                meaning: "the water's threshold on the blurred field (null for mud alone)",
            },
            ParamColumn {
                name: "intensity",
                meaning: "the water's intensity (null for mud alone)",
            },
            ParamColumn {
                name: "mud",
                meaning: "the mud's share against the water, 0 to 1",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "level 0 is the identity (water of intensity 0); between severities 3 and 4 water fades \
         into mud where the package switches; a water layer with no drop (possible on tiny \
         images) adds nothing where the package divides 0 by 0"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws (OpenCV's Canny, distance transform, blurs, equalisation and \
         emboss ported step by step)"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        let mud = severity_value(level, &MUD_SHARE);
        let water = |table: &[f64; 6]| (mud < 1.0).then(|| severity_value(level, table));
        Params::new(&[
            Some(severity_value(level, &LOC)),
            Some(severity_value(level, &SCALE)),
            water(&WATER_SIGMA),
            water(&WATER_THRESHOLD),
            water(&INTENSITY),
            Some(mud),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let (loc, scale, mud) = (params.value(0), params.value(1), params.value(5));
        let size = image.size();
        let shape = (size.width as usize, size.height as usize);
        let n = shape.0 * shape.1;
        // Planes of f64 kept per thread: fresh ones cost page faults on every image.
        let mut field = take_scratch(&FIELD, n);
        draws.normal(loc, scale, &mut field);
        let water = (mud < 1.0).then(|| {
            let layer = water_layer(
                &field,
                shape,
                params.value(2),
                params.value(3),
                params.value(4),
            );
            (layer, 1.0 - mud)
        });
        let blots = (mud > 0.0).then(|| mud_layer(&field, shape));
        keep_scratch(&FIELD, field);
        let mut row = vec![0.0; shape.0];
        for (channel, plane) in image.data_mut().chunks_exact_mut(n).enumerate() {
            // `np.float32(k) / 255.`: the f32 the plane holds.
            let water_colour = (WATER[channel] / 255.0) as f32;
            let mud_colour = MUD[channel] / 255.0;
            // `clip(x + m color, 0, 1) * 255` in f32.
            let wet = |v: f32, m: f32| f64::from((v + m * water_colour).clamp(0.0, 1.0) * 255.0);
            // `x *= 1 - m` in f32, `+ colour m` in f64.
            let muddy = |v: f32, m: f32| {
                let kept = f64::from(v * (1.0 - m));
                (kept + mud_colour * f64::from(m)).clamp(0.0, 1.0) * 255.0
            };
            for (values, at) in plane.chunks_exact_mut(shape.0).zip((0..n).step_by(shape.0)) {
                // One loop per case, in SIMD lanes (a test per value kept them scalar).
                in_lanes(
                    #[inline(always)]
                    || match (&water, &blots) {
                        (Some((layer, share)), None) => {
                            for ((out, &v), &m) in row.iter_mut().zip(&*values).zip(&layer[at..]) {
                                *out = share * wet(v, m);
                            }
                        }
                        (None, Some(blots)) => {
                            for ((out, &v), &m) in row.iter_mut().zip(&*values).zip(&blots[at..]) {
                                *out = mud * muddy(v, m);
                            }
                        }
                        (Some((layer, share)), Some(blots)) => {
                            for (((out, &v), &m), &b) in row
                                .iter_mut()
                                .zip(&*values)
                                .zip(&layer[at..])
                                .zip(&blots[at..])
                            {
                                *out = share * wet(v, m) + mud * muddy(v, b);
                            }
                        }
                        (None, None) => row.fill(0.0),
                    },
                );
                store_values(values, &row, Scale::Bytes);
            }
        }
    }
}

/// The water's `m`: the field blurred and thresholded, in bytes; its edges' distance map
/// (capped at 20, blurred, equalised, embossed, blurred); their product scaled to a maximum of
/// `intensity`, in f32 as the package computes it.
fn water_layer(
    field: &[f64],
    shape: (usize, usize),
    sigma: f64,
    threshold: f64,
    intensity: f64,
) -> Vec<f32> {
    let mut liquid = take_scratch(&LIQUID, field.len());
    liquid.copy_from_slice(field);
    gaussian_filter(
        &mut liquid,
        shape,
        (sigma, sigma),
        4.0,
        Border::Nearest,
        false,
    );
    // `liquid[liquid < t] = 0`, then `(liquid * 255).astype(np.uint8)`: truncation.
    let bytes: Vec<u8> = in_lanes(
        #[inline(always)]
        || {
            liquid
                .iter()
                .map(|&v| {
                    if v < threshold {
                        0
                    } else {
                        whole_byte(v * 255.0)
                    }
                })
                .collect()
        },
    );
    keep_scratch(&LIQUID, liquid);
    let edges = canny(&bytes, shape, 50, 150);
    let away: Vec<u8> = edges.iter().map(|&e| 255 - e).collect();
    // `cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)`.
    let distance = distance_transform(&away, shape, 20.0);
    let blurred = box_blur_f32(&distance, shape);
    // `.astype(np.uint8)`: the distances lie in [0, 20].
    let mut map: Vec<u8> = in_lanes(
        #[inline(always)]
        || blurred.iter().map(|&d| whole_byte(f64::from(d))).collect(),
    );
    equalize_histogram(&mut map);
    let map = box_blur_u8(&filter_3x3_u8(&map, shape, EMBOSS), shape);
    let product: Vec<f32> = bytes
        .iter()
        .zip(&map)
        .map(|(&l, &d)| f32::from(l) * f32::from(d))
        .collect();
    let max = product.iter().copied().fold(0.0f32, f32::max);
    if max == 0.0 {
        // The package divides 0 by 0 here (NaN); no drop adds nothing.
        return vec![0.0; product.len()];
    }
    let intensity = intensity as f32;
    product.into_iter().map(|m| m / max * intensity).collect()
}

/// The whole part of `v >= 0` as a byte, 255 from 255 up (`as u8`), by compares and adds
/// that SIMD lanes have: Rust's saturating float-to-integer cast keeps a loop scalar. `v +
/// 2^52` rounds `v` to the nearest whole number in its low mantissa bits; the whole part is
/// that, or one less where it rounded up.
#[inline(always)]
fn whole_byte(v: f64) -> u8 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let v = if v < 255.0 { v } else { 255.0 };
    let big = v + TWO_52;
    (big.to_bits() - u64::from(big - TWO_52 > v)) as u8
}

/// The mud's `m`: where the field blurred by 1 passes .65, blurred by 1.5 in f32, kept where it
/// reaches .8.
fn mud_layer(field: &[f64], shape: (usize, usize)) -> Vec<f32> {
    let mut liquid = take_scratch(&LIQUID, field.len());
    liquid.copy_from_slice(field);
    gaussian_filter(
        &mut liquid,
        shape,
        (MUD_SIGMA, MUD_SIGMA),
        4.0,
        Border::Nearest,
        false,
    );
    // `liquid[liquid < t] = 0`, then `liquid > t` as f32 (a value equal to t is no mud), in
    // place.
    let mut blots = liquid;
    for v in blots.iter_mut() {
        *v = if *v > MUD_THRESHOLD { 1.0 } else { 0.0 };
    }
    gaussian_filter(
        &mut blots,
        shape,
        (MUD_BLUR, MUD_BLUR),
        4.0,
        Border::Nearest,
        true,
    );
    let blots_f32 = blots
        .iter()
        .map(|&m| {
            let m = m as f32;
            if m < 0.8 { 0.0 } else { m }
        })
        .collect();
    keep_scratch(&LIQUID, blots);
    blots_f32
}

thread_local! {
    static FIELD: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static LIQUID: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoiseRng, TransformKind};
    use drift_core::{Purpose, RgbImage8, sample_rng};
    use rand::SeedableRng;

    fn spattered(level: f64) -> Vec<u8> {
        let size = ImageSize::new(48, 40).unwrap();
        let pixels: Vec<u8> = (0..48 * 40 * 3).map(|i| (i % 151 + 50) as u8).collect();
        let source = RgbImage8::from_pixels(size, pixels).unwrap();
        let kind = TransformKind::named("imagenet_c:spatter").unwrap();
        let params = kind.draw(
            level,
            size,
            &mut sample_rng(5, 1, Purpose::TransformParams(0)),
        );
        let mut image = PlanarImage::from_rgb8(&source);
        kind.apply(&params, &mut image, &mut NoiseRng::seed_from_u64(8));
        image.to_rgb8().pixels().to_vec()
    }

    fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(x.abs_diff(*y)))
            .sum::<f64>()
            / a.len() as f64
    }

    #[test]
    fn whole_bytes_are_the_truncating_casts() {
        let mut unit = crate::imagenet_c::test_units(3);
        let edges = [
            0.0, 0.5, 1.0, 1.5, 2.5, 19.999_999, 20.0, 254.5, 254.999, 255.0, 255.5, 1e9,
        ];
        let values = edges.into_iter().chain((0..10_000).map(|_| unit() * 300.0));
        for v in values {
            assert_eq!(whole_byte(v), v as u8, "{v}");
        }
    }

    #[test]
    fn water_fades_into_mud_without_a_jump() {
        // Severity 3 is water, 4 mud; between them the share moves the image step by step.
        let water = spattered(0.6);
        let mud = spattered(0.8);
        let apart = mean_difference(&water, &mud);
        assert!(apart > 1.0, "water and mud differ: {apart}");
        let mut previous = water.clone();
        for step in 1..=10 {
            let level = 0.6 + 0.02 * f64::from(step);
            let now = spattered(level);
            let moved = mean_difference(&previous, &now);
            assert!(moved <= apart / 5.0, "a jump of {moved} at level {level}");
            previous = now;
        }
        assert_eq!(previous, mud);
        let kind = TransformKind::named("imagenet_c:spatter").unwrap();
        let size = ImageSize::new(48, 40).unwrap();
        let mut rng = sample_rng(0, 0, Purpose::TransformParams(0));
        let between = kind.draw(0.7, size, &mut rng);
        assert_eq!(between.get(5), Some(0.5));
        assert_eq!(between.get(4), Some(0.5), "water at severity 3's intensity");
        assert_eq!(kind.draw(0.9, size, &mut rng).get(4), None, "mud alone");
    }
}
