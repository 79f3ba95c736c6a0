//! scikit-image's `rgb2hsv` and `hsv2rgb` (0.26) on f64 values in [0, 1]: hue assigned for a
//! red, then green, then blue maximum, so blue wins ties over green and green over red;
//! `h = (h / 6) % 1` (numpy's floored remainder); hue and saturation 0 where max = min.

/// numpy's `np.remainder(a, 1.0)` for |a| < 1 (hue / 6 is in [-1/6, 5/6]), where fmod is
/// `a` itself: moved into [0, 1) when negative, and +0 for a zero.
#[inline(always)]
fn remainder_one(a: f64) -> f64 {
    if a < 0.0 {
        a + 1.0
    } else if a == 0.0 {
        0.0
    } else {
        a
    }
}

/// `rgb2hsv` of one pixel.
pub(crate) fn rgb_to_hsv([r, g, b]: [f64; 3]) -> [f64; 3] {
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

/// `hsv2rgb` of one pixel.
pub(crate) fn hsv_to_rgb([h, s, v]: [f64; 3]) -> [f64; 3] {
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
}
