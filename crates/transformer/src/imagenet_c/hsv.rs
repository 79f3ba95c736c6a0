//! scikit-image's `rgb2hsv` and `hsv2rgb` (0.26) on f64 values in [0, 1]: hue assigned for a
//! red, then green, then blue maximum, so blue wins ties over green and green over red;
//! `h = (h / 6) % 1` (numpy's floored remainder); hue and saturation 0 where max = min.

use crate::PlanarImage;
use crate::imagenet_c::{Scale, Unit, store_values};

/// numpy's `np.remainder(a, 1.0)` for |a| < 1 (hue / 6 is in [-1/6, 5/6]), where fmod is
/// `a` itself: moved into [0, 1) when negative, and +0 for a zero.
#[cfg(test)]
fn remainder_one(a: f64) -> f64 {
    if a < 0.0 {
        a + 1.0
    } else if a == 0.0 {
        0.0
    } else {
        a
    }
}

/// `rgb2hsv` of one pixel, in skimage's branching form: the reference for the select form.
#[cfg(test)]
fn rgb_to_hsv([r, g, b]: [f64; 3]) -> [f64; 3] {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    if delta == 0.0 {
        return [0.0, 0.0, v];
    }
    let s = delta / v;
    let mut h = 0.0;
    if r == v {
        h = (g - b) / delta;
    }
    if g == v {
        h = 2.0 + (b - r) / delta;
    }
    if b == v {
        h = 4.0 + (r - g) / delta;
    }
    [remainder_one(h / 6.0), s, v]
}

/// `hsv2rgb` of one pixel, in skimage's branching form: the reference for the select form.
#[cfg(test)]
fn hsv_to_rgb([h, s, v]: [f64; 3]) -> [f64; 3] {
    let hi = super::floor_fast(h * 6.0);
    let f = h * 6.0 - hi;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    // `hi.astype(uint8) % 6`: h in [0, 1] gives 0..=6.
    match (hi as u8) % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// `rgb2hsv`, then `f`, then `hsv2rgb`, of every pixel of the image, stored clipped: the same
/// IEEE operations as [`rgb_to_hsv`] and [`hsv_to_rgb`] (so the same bits), written as selects
/// instead of branches so that they run in SIMD lanes, compiled for the widest SIMD the CPU has,
/// 1024 pixels at a time.
pub(crate) fn map_hsv(image: &mut PlanarImage, f: impl Fn([f64; 3]) -> [f64; 3] + Copy) {
    let unit = Unit::of(image);
    pulp::Arch::new().dispatch(MapHsv {
        planes: image.planes_mut(),
        unit,
        f,
    });
}

struct MapHsv<'a, F> {
    planes: [&'a mut [f32]; 3],
    unit: Unit,
    f: F,
}

impl<F: Fn([f64; 3]) -> [f64; 3] + Copy> pulp::WithSimd for MapHsv<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        const CHUNK: usize = 1024;
        let [r, g, b] = self.planes;
        let (unit, f) = (self.unit, self.f);
        let mut values = [[0.0f64; CHUNK]; 3];
        for ((r, g), b) in r
            .chunks_mut(CHUNK)
            .zip(g.chunks_mut(CHUNK))
            .zip(b.chunks_mut(CHUNK))
        {
            let len = r.len();
            let [vr, vg, vb] = &mut values;
            for (((or, og), ob), ((&xr, &xg), &xb)) in vr
                .iter_mut()
                .zip(vg.iter_mut())
                .zip(vb.iter_mut())
                .zip(r.iter().zip(g.iter()).zip(b.iter()))
            {
                let rgb = [
                    unit.unit_lanes(xr),
                    unit.unit_lanes(xg),
                    unit.unit_lanes(xb),
                ];
                [*or, *og, *ob] = hsv_to_rgb_lanes(f(rgb_to_hsv_lanes(rgb)));
            }
            store_values(r, &vr[..len], Scale::Unit);
            store_values(g, &vg[..len], Scale::Unit);
            store_values(b, &vb[..len], Scale::Unit);
        }
    }
}

/// [`rgb_to_hsv`] as selects.
#[inline(always)]
fn rgb_to_hsv_lanes([r, g, b]: [f64; 3]) -> [f64; 3] {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    let s = delta / v;
    let h_red = (g - b) / delta;
    let h_green = 2.0 + (b - r) / delta;
    let h_blue = 4.0 + (r - g) / delta;
    let h = if b == v {
        h_blue
    } else if g == v {
        h_green
    } else if r == v {
        h_red
    } else {
        0.0
    };
    let a = h / 6.0;
    let a = if a < 0.0 {
        a + 1.0
    } else if a == 0.0 {
        0.0
    } else {
        a
    };
    let grey = delta == 0.0;
    [if grey { 0.0 } else { a }, if grey { 0.0 } else { s }, v]
}

/// [`hsv_to_rgb`] as selects (`floor` being one instruction where SIMD is compiled in).
#[inline(always)]
fn hsv_to_rgb_lanes([h, s, v]: [f64; 3]) -> [f64; 3] {
    let hi = (h * 6.0).floor();
    let f = h * 6.0 - hi;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    // Sector `hi % 6`: 6 (h within an ulp of 1) is sector 0.
    let sector = if hi >= 6.0 { 0.0 } else { hi };
    let red = if sector == 0.0 || sector == 5.0 {
        v
    } else if sector == 1.0 {
        q
    } else if sector == 4.0 {
        t
    } else {
        p
    };
    let green = if sector == 1.0 || sector == 2.0 {
        v
    } else if sector == 0.0 {
        t
    } else if sector == 3.0 {
        q
    } else {
        p
    };
    let blue = if sector == 3.0 || sector == 4.0 {
        v
    } else if sector == 2.0 {
        t
    } else if sector == 5.0 {
        q
    } else {
        p
    };
    [red, green, blue]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_negative_hues_wrap() {
        for rgb in [
            [0.2, 0.5, 0.9],
            [1.0, 0.0, 0.0],
            [0.3, 0.3, 0.1],
            [0.4, 0.4, 0.4],
        ] {
            let back = hsv_to_rgb(rgb_to_hsv(rgb));
            for (a, b) in back.iter().zip(rgb) {
                assert!((a - b).abs() < 1e-12, "{rgb:?} -> {back:?}");
            }
        }
        let [h, _, _] = rgb_to_hsv([0.5, 0.5, 0.0]);
        assert!((h - 1.0 / 6.0).abs() < 1e-15);
        let [h, _, _] = rgb_to_hsv([0.5, 0.0, 0.1]);
        assert!((h - (1.0 - 0.2 / 6.0)).abs() < 1e-12, "{h}");
    }
    #[test]
    fn select_forms_are_the_branching_forms_bit_for_bit() {
        // Every triple of bytes on a grid of 18 levels (ties between channels included), and
        // hues within an ulp of 1.
        let levels: Vec<f64> = (0..=255)
            .step_by(15)
            .map(|k| f64::from(k) / 255.0)
            .collect();
        for &r in &levels {
            for &g in &levels {
                for &b in &levels {
                    let hsv = rgb_to_hsv([r, g, b]);
                    let lanes = rgb_to_hsv_lanes([r, g, b]);
                    assert_eq!(
                        hsv.map(f64::to_bits),
                        lanes.map(f64::to_bits),
                        "{r} {g} {b}"
                    );
                    let back = hsv_to_rgb(hsv);
                    assert_eq!(
                        back.map(f64::to_bits),
                        hsv_to_rgb_lanes(hsv).map(f64::to_bits)
                    );
                }
            }
        }
        for h in [1.0f64.next_down(), 0.0, 0.5, 5.0 / 6.0] {
            let hsv = [h, 0.7, 0.9];
            assert_eq!(
                hsv_to_rgb(hsv).map(f64::to_bits),
                hsv_to_rgb_lanes(hsv).map(f64::to_bits)
            );
        }
    }
}
