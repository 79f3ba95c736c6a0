//! The transforms as pure functions with explicit parameters, following
//! `torchvision.transforms.v2.functional` on float32 tensors operation by operation.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::PlanarImage;

/// torchvision's greyscale weights.
const GREY: [f32; 3] = [0.2989, 0.587, 0.114];

/// A pixel's greyscale, as torchvision's `rgb_to_grayscale`.
#[inline(always)]
pub(crate) fn grey(r: f32, g: f32, b: f32) -> f32 {
    r * GREY[0] + g * GREY[1] + b * GREY[2]
}

// Baseline x86-64 has no rounding instruction, so f32::floor, round_ties_even and `%` are library
// calls, and `as i32` saturates lane by lane. The helpers below give bit-identical results with
// plain float arithmetic and selects on the ranges used, so loops over them vectorise.

/// `x.round_ties_even()` for |x| < 2^23: adding and removing 2^23 rounds in the FPU's default
/// round-to-nearest-even mode.
#[inline(always)]
fn round_half_even(x: f32) -> f32 {
    const SHIFT: f32 = 8_388_608.0;
    // Rounding the magnitude and restoring the sign keeps -0.0 for small negatives, as
    // round_ties_even does, without a branch.
    ((x.abs() + SHIFT) - SHIFT).copysign(x)
}

/// `x.floor()` for |x| < 2^23.
#[inline(always)]
pub(crate) fn floor_small(x: f32) -> f32 {
    let nearest = round_half_even(x);
    if nearest > x { nearest - 1.0 } else { nearest }
}

/// `x.rem_euclid(1.0)` for |x| < 2^23 (and torch's `fmod(x, 1)` for x >= 0), except that it
/// gives +0.0 for negative integers, where rem_euclid gives -0.0.
#[inline(always)]
fn wrap_unit(x: f32) -> f32 {
    x - floor_small(x)
}

/// `clamp(f * x + (1 - f) * other)`, torchvision's `_blend`.
#[inline(always)]
pub(crate) fn blend(x: f32, other: f32, factor: f32) -> f32 {
    (x * factor + other * (1.0 - factor)).clamp(0.0, 1.0)
}

// The elementwise transforms run compiled for the widest SIMD this CPU has (AVX-512, AVX2 or
// the baseline), chosen at run time by `pulp::Arch::dispatch`. Each loop sits in the
// `#[inline(always)]` `with_simd` of a small struct, with every helper `#[inline(always)]`, so
// it is compiled for that width (a closure passed to `dispatch` is not inlined there, and stays
// baseline SSE2). The operations are the same IEEE ones in every width (Rust never fuses a
// multiply and an add on its own), so the results are bit-identical on every CPU kind.

/// `x = blend(x, other, factor)` over one or more planes.
struct Blend<'a> {
    planes: [&'a mut [f32]; 3],
    other: f32,
    factor: f32,
}

impl pulp::WithSimd for Blend<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for plane in self.planes {
            for x in plane {
                *x = blend(*x, self.other, self.factor);
            }
        }
    }
}

/// Blends every pixel with its own greyscale.
struct Saturation<'a>([&'a mut [f32]; 3], f32);
impl pulp::WithSimd for Saturation<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        saturate_pixels(self.0, self.1);
    }
}

/// Saturation's loop.
#[inline(always)]
fn saturate_pixels([r, g, b]: [&mut [f32]; 3], factor: f32) {
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let grey = grey(*r, *g, *b);
        *r = blend(*r, grey, factor);
        *g = blend(*g, grey, factor);
        *b = blend(*b, grey, factor);
    }
}

/// Shifts every pixel's hue. Branch-free per pixel (selects, no early returns or jump tables),
/// so the loop vectorises.
struct Hue<'a>([&'a mut [f32]; 3], f32);
impl pulp::WithSimd for Hue<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        shift_hue(self.0, self.1);
    }
}

/// Hue's loop (the byte path runs it on blocks of pixels).
#[inline(always)]
pub(crate) fn shift_hue([r, g, b]: [&mut [f32]; 3], shift: f32) {
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        [*r, *g, *b] = shift_pixel_hue(*r, *g, *b, shift);
    }
}

/// One pixel's hue shift.
#[inline(always)]
pub(crate) fn shift_pixel_hue(r: f32, g: f32, b: f32, shift: f32) -> [f32; 3] {
    let (h, s, v) = rgb_to_hsv(r, g, b);
    hsv_to_rgb(wrap_unit(h + shift), s, v)
}

/// `clamp(factor * x)`.
pub fn brightness(image: &mut PlanarImage, factor: f32) {
    pulp::Arch::new().dispatch(Blend {
        planes: image.planes_mut(),
        other: 0.0,
        factor,
    });
}

/// Blend with the mean of the image's greyscale.
pub fn contrast(image: &mut PlanarImage, factor: f32) {
    let [r, g, b] = image.planes_mut();
    let sum: f64 = (0..r.len())
        .map(|i| f64::from(grey(r[i], g[i], b[i])))
        .sum();
    let mean = (sum / r.len() as f64) as f32;
    pulp::Arch::new().dispatch(Blend {
        planes: [r, g, b],
        other: mean,
        factor,
    });
}

/// Blend every pixel with its own greyscale.
pub fn saturation(image: &mut PlanarImage, factor: f32) {
    pulp::Arch::new().dispatch(Saturation(image.planes_mut(), factor));
}

/// Shift the hue by `shift` turns (in [-0.5, 0.5]) in HSV, as torchvision's `adjust_hue`.
pub fn hue(image: &mut PlanarImage, shift: f32) {
    if shift == 0.0 {
        return;
    }
    pulp::Arch::new().dispatch(Hue(image.planes_mut(), shift));
}

/// torchvision's `_rgb_to_hsv`, operation by operation.
#[inline(always)]
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let equal = maxc == minc;
    let range = maxc - minc;
    let s = range / if equal { 1.0 } else { maxc };
    let divisor = if equal { 1.0 } else { range };
    let (rc, gc, bc) = (
        (maxc - r) / divisor,
        (maxc - g) / divisor,
        (maxc - b) / divisor,
    );
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    // torch's fmod(x, 1): the dividend is positive here, so it is x - floor(x).
    let h = wrap_unit(h * (1.0 / 6.0) + 1.0);
    (h, s, maxc)
}

/// torchvision's `_hsv_to_rgb`: sector `i = floor(6h)` picks each channel from v, p, q, t.
#[inline(always)]
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = h * 6.0;
    let i = floor_small(h6);
    let f = h6 - i;
    // torch takes `i % 6`; 0 <= h < 1 keeps i in 0..=6. Sectors stay floats: comparing them
    // needs no conversion.
    let i = if i >= 6.0 { i - 6.0 } else { i };
    let sxf = s * f;
    let one_minus_s = 1.0 - s;
    let q = ((1.0 - sxf) * v).clamp(0.0, 1.0);
    let t = ((sxf + one_minus_s) * v).clamp(0.0, 1.0);
    let p = (one_minus_s * v).clamp(0.0, 1.0);
    // Sectors 0..5: r = v q p p t v, g = t v v q p p, b = p p t v v q.
    let r = if i == 0.0 || i == 5.0 {
        v
    } else if i == 1.0 {
        q
    } else if i == 4.0 {
        t
    } else {
        p
    };
    let g = if i == 1.0 || i == 2.0 {
        v
    } else if i == 0.0 {
        t
    } else if i == 3.0 {
        q
    } else {
        p
    };
    let b = if i == 3.0 || i == 4.0 {
        v
    } else if i == 2.0 {
        t
    } else if i == 5.0 {
        q
    } else {
        p
    };
    [r, g, b]
}

/// Rotate by `angle_degrees` counter-clockwise about the centre, same size, nearest neighbour,
/// black where nothing maps, as torchvision's `rotate(interpolation=NEAREST, fill=0)`. Values
/// are moved or zeroed, never computed: an image that holds bytes still does.
pub fn rotate(image: &mut PlanarImage, angle_degrees: f64) {
    let size = image.size();
    let (w, h) = (size.width as usize, size.height as usize);
    let n = w * h;
    let held_bytes = image.holds_bytes();
    let plan = rotation_plan(angle_degrees, w, h);
    if let RotationPlan::Identity = plan {
        return;
    }
    let source = image.data().to_vec();
    let data = image.data_mut();
    match plan {
        RotationPlan::Identity => {}
        RotationPlan::QuarterTurns(k) => {
            for y in 0..h {
                for x in 0..w {
                    let (sx, sy) = quarter_turn_source(k, x, y, w, h);
                    for c in 0..3 {
                        data[c * n + y * w + x] = source[c * n + sy * w + sx];
                    }
                }
            }
        }
        RotationPlan::Resample(theta) => pulp::Arch::new().dispatch(RotateRows {
            source: &source,
            data,
            size: (w, h),
            theta,
        }),
    }
    image.set_holds_bytes(held_bytes);
}

/// How a rotation is done: torchvision's exact shortcuts, or resampling.
pub(crate) enum RotationPlan {
    /// A multiple of 360 degrees.
    Identity,
    /// `torch.rot90` this many times (180 degrees always, 90 and 270 on square images).
    QuarterTurns(u8),
    /// Nearest-neighbour resampling with these rows of the inverse affine matrix.
    Resample([[f32; 3]; 2]),
}

/// The plan for rotating a `w` x `h` image by `angle_degrees`.
pub(crate) fn rotation_plan(angle_degrees: f64, w: usize, h: usize) -> RotationPlan {
    match angle_degrees.rem_euclid(360.0) {
        0.0 => RotationPlan::Identity,
        180.0 => RotationPlan::QuarterTurns(2),
        a if a == 90.0 && w == h => RotationPlan::QuarterTurns(1),
        a if a == 270.0 && w == h => RotationPlan::QuarterTurns(3),
        a => RotationPlan::Resample(rotation_theta(a, w, h)),
    }
}

/// The source pixel of output pixel (x, y) after `k` counter-clockwise quarter turns, as
/// `torch.rot90(k, dims=(H, W))`.
#[inline]
pub(crate) fn quarter_turn_source(k: u8, x: usize, y: usize, w: usize, h: usize) -> (usize, usize) {
    match k {
        1 => (w - 1 - y, x),
        2 => (w - 1 - x, h - 1 - y),
        _ => (y, h - 1 - x),
    }
}

/// The inverse affine matrix of torchvision's _get_inverse_affine_matrix(center 0, -angle), in
/// f64 then cast to f32, rescaled by (0.5 w, 0.5 h) as _affine_grid does: the rows that map an
/// output pixel's normalised coordinates to the source's x and y.
fn rotation_theta(angle_degrees: f64, w: usize, h: usize) -> [[f32; 3]; 2] {
    let rot = (-angle_degrees).to_radians();
    let matrix = [rot.cos(), rot.sin(), 0.0, -rot.sin(), rot.cos(), 0.0].map(|m| m as f32);
    let (half_w, half_h) = (0.5 * w as f32, 0.5 * h as f32);
    [
        [matrix[0] / half_w, matrix[1] / half_w, matrix[2] / half_w],
        [matrix[3] / half_h, matrix[4] / half_h, matrix[5] / half_h],
    ]
}

/// One row of rotation's resampling at a time: the nearest source pixel of every output pixel,
/// as an index and a mask (all ones inside the image, zero where the output is black), in a
/// branch-free loop of float arithmetic that vectorises.
pub(crate) struct RotationGrid {
    theta: [[f32; 3]; 2],
    width: usize,
    size: (f32, f32),
    /// torchvision's base grid: pixel centres, (1 - w) / 2 + x, computed once per column.
    base_xs: Vec<f32>,
    /// The source pixel of each output pixel of the current row (0 outside the image).
    pub(crate) index: Vec<u32>,
    /// `u32::MAX` where that pixel is inside the image, 0 where the output is black.
    pub(crate) mask: Vec<u32>,
}

impl RotationGrid {
    pub(crate) fn new(theta: [[f32; 3]; 2], w: usize, h: usize) -> Self {
        let (wf, hf) = (w as f32, h as f32);
        Self {
            theta,
            width: w,
            size: (wf, hf),
            base_xs: (0..w).map(|x| (1.0 - wf) * 0.5 + x as f32).collect(),
            index: vec![0; w],
            mask: vec![0; w],
        }
    }

    /// Fills `index` and `mask` for output row `y`.
    #[inline(always)]
    pub(crate) fn row(&mut self, y: usize) {
        // A whole number in [0, 2^23) plus 2^23 has the number in its low mantissa bits.
        const SHIFT: f32 = 8_388_608.0;
        const SHIFT_BITS: u32 = 0x4b00_0000;
        let ([theta_x, theta_y], (wf, hf)) = (self.theta, self.size);
        let width = self.width as u32;
        let base_y = (1.0 - hf) * 0.5 + y as f32;
        let outputs = self.index.iter_mut().zip(self.mask.iter_mut());
        for ((index, mask), &base_x) in outputs.zip(&self.base_xs) {
            let grid_x = base_x * theta_x[0] + base_y * theta_x[1] + theta_x[2];
            let grid_y = base_x * theta_y[0] + base_y * theta_y[1] + theta_y[2];
            // grid_sample, align_corners=False, nearest: round half to even.
            let ix = round_half_even(((grid_x + 1.0) * wf - 1.0) / 2.0);
            let iy = round_half_even(((grid_y + 1.0) * hf - 1.0) / 2.0);
            let inside = ix >= 0.0 && iy >= 0.0 && ix < wf && iy < hf;
            // Sides are at most 8192, so the clamped coordinates convert exactly.
            let column = (ix.max(0.0).min(wf - 1.0) + SHIFT).to_bits() - SHIFT_BITS;
            let row = (iy.max(0.0).min(hf - 1.0) + SHIFT).to_bits() - SHIFT_BITS;
            *index = if inside { row * width + column } else { 0 };
            *mask = if inside { u32::MAX } else { 0 };
        }
    }
}

/// Rotation's resampling, row by row, compiled for the widest SIMD the CPU has: the source
/// indices in float arithmetic, then the lookups (an index per pixel: these cannot).
struct RotateRows<'a> {
    source: &'a [f32],
    data: &'a mut [f32],
    size: (usize, usize),
    theta: [[f32; 3]; 2],
}

impl pulp::WithSimd for RotateRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (source, data, (w, h)) = (self.source, self.data, self.size);
        let n = w * h;
        let mut grid = RotationGrid::new(self.theta, w, h);
        let (src_r, rest) = source.split_at(n);
        let (src_g, src_b) = rest.split_at(n);
        for y in 0..h {
            grid.row(y);
            let (out_r, rest) = data.split_at_mut(n);
            let (out_g, out_b) = rest.split_at_mut(n);
            let row = y * w..(y + 1) * w;
            let outputs = out_r[row.clone()]
                .iter_mut()
                .zip(&mut out_g[row.clone()])
                .zip(&mut out_b[row]);
            for (((r, g), b), (&from, &mask)) in outputs.zip(grid.index.iter().zip(&grid.mask)) {
                let from = from as usize;
                let masked = |v: f32| f32::from_bits(v.to_bits() & mask);
                (*r, *g, *b) = (
                    masked(src_r[from]),
                    masked(src_g[from]),
                    masked(src_b[from]),
                );
            }
        }
    }
}

/// The normalised 5-tap Gaussian of torchvision (`softmax(-(x / sigma)^2)` on
/// `linspace(-2/sqrt 2, 2/sqrt 2, 5)`).
pub(crate) fn gaussian_kernel(sigma: f32) -> [f32; 5] {
    let lim = 4.0f32 / (2.0 * 2.0f32.sqrt());
    let step = lim / 2.0;
    let logits = [-2.0f32, -1.0, 0.0, 1.0, 2.0].map(|i| -(i * step / sigma).powi(2));
    let weights = logits.map(f32::exp);
    let total: f32 = weights.iter().sum();
    weights.map(|w| w / total)
}

/// Mirror an index into 0..len without repeating the edge (torch's `reflect` padding, OpenCV's
/// `BORDER_REFLECT_101`: dcb|abcd|cba).
#[inline]
pub(crate) fn reflect(i: isize, len: usize) -> usize {
    let len = len as isize;
    if len == 1 {
        return 0;
    }
    let period = 2 * (len - 1);
    let m = i.rem_euclid(period);
    (if m >= len { period - m } else { m }) as usize
}

/// 5x5 Gaussian blur with reflect padding; `sigma` 0 is the identity.
pub fn gaussian_blur(image: &mut PlanarImage, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let size = image.size();
    pulp::Arch::new().dispatch(Blur {
        planes: image.planes_mut(),
        kernel: gaussian_kernel(sigma),
        size: (size.width as usize, size.height as usize),
    });
}

/// One output of the 5-tap kernel, summed left to right: both blur paths call this, so their
/// bits agree.
#[inline(always)]
pub(crate) fn five_taps([k0, k1, k2, k3, k4]: [f32; 5], [a, b, c, d, e]: [f32; 5]) -> f32 {
    k0 * a + k1 * b + k2 * c + k3 * d + k4 * e
}

/// The separable 5x5 blur, compiled for the widest SIMD the CPU has.
struct Blur<'a> {
    planes: [&'a mut [f32]; 3],
    kernel: [f32; 5],
    size: (usize, usize),
}

impl pulp::WithSimd for Blur<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (kernel, (w, h)) = (self.kernel, self.size);
        // Reflect padding is done once per row into `padded`, so the inner loops are plain
        // slice arithmetic the compiler vectorises.
        let mut padded = vec![0.0f32; w + 4];
        let mut row_pass = vec![0.0f32; w * h];
        for plane in self.planes {
            // The 2-D kernel is the outer product of the 1-D one: blur rows, then columns.
            for y in 0..h {
                let row = &plane[y * w..(y + 1) * w];
                padded[2..w + 2].copy_from_slice(row);
                for i in [0, 1, w + 2, w + 3] {
                    padded[i] = row[reflect(i as isize - 2, w)];
                }
                let out = &mut row_pass[y * w..(y + 1) * w];
                let taps = (&padded[..w], &padded[1..w + 1], &padded[2..w + 2]);
                let taps = (taps, &padded[3..w + 3], &padded[4..w + 4]);
                for (x, out) in out.iter_mut().enumerate() {
                    let ((p0, p1, p2), p3, p4) = taps;
                    *out = five_taps(kernel, [p0[x], p1[x], p2[x], p3[x], p4[x]]);
                }
            }
            for y in 0..h {
                let rows = [-2isize, -1, 0, 1, 2].map(|d| reflect(y as isize + d, h) * w);
                let [r0, r1, r2, r3, r4] = rows.map(|start| &row_pass[start..start + w]);
                let out = &mut plane[y * w..(y + 1) * w];
                let columns = r0.iter().zip(r1).zip(r2).zip(r3).zip(r4);
                for (out, ((((a, b), c), d), e)) in out.iter_mut().zip(columns) {
                    *out = five_taps(kernel, [*a, *b, *c, *d, *e]);
                }
            }
        }
    }
}

/// `clamp(x + mean + sigma * z)`, z standard normal per pixel and channel, drawn from `rng` in
/// plane order: a chunk of draws into a buffer, then the arithmetic on it, vectorised.
pub fn gaussian_noise(image: &mut PlanarImage, mean: f32, sigma: f32, rng: &mut impl Rng) {
    const CHUNK: usize = 4096;
    let mut normals = [0.0f32; CHUNK];
    for values in image.data_mut().chunks_mut(CHUNK) {
        let normals = &mut normals[..values.len()];
        for z in normals.iter_mut() {
            *z = StandardNormal.sample(rng);
        }
        pulp::Arch::new().dispatch(AddNoise {
            values,
            normals,
            mean,
            sigma,
        });
    }
}

struct AddNoise<'a> {
    values: &'a mut [f32],
    normals: &'a [f32],
    mean: f32,
    sigma: f32,
}

impl pulp::WithSimd for AddNoise<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (x, &z) in self.values.iter_mut().zip(self.normals) {
            *x = add_noise(*x, z, self.mean, self.sigma);
        }
    }
}

/// One value plus its noise, clamped (the byte path's arithmetic too).
#[inline(always)]
pub(crate) fn add_noise(x: f32, z: f32, mean: f32, sigma: f32) -> f32 {
    (x + (mean + z * sigma)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drift_core::ImageSize;

    fn image(w: u32, h: u32) -> PlanarImage {
        let size = ImageSize::new(w, h).unwrap();
        let data = (0..3 * w * h)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        PlanarImage::from_planes(size, data).unwrap()
    }

    #[test]
    fn identities_at_neutral_parameters() {
        let original = image(9, 7);
        for op in [
            (|i: &mut PlanarImage| brightness(i, 1.0)) as fn(&mut PlanarImage),
            |i| contrast(i, 1.0),
            |i| saturation(i, 1.0),
            |i| hue(i, 0.0),
            |i| rotate(i, 0.0),
            |i| rotate(i, 360.0),
            |i| gaussian_blur(i, 0.0),
        ] {
            let mut copy = original.clone();
            op(&mut copy);
            for (a, b) in copy.data().iter().zip(original.data()) {
                assert!((a - b).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn arithmetic_helpers_match_the_library_functions_bit_for_bit() {
        let mut x = -300.0f32;
        while x < 300.0 {
            assert_eq!(
                round_half_even(x).to_bits(),
                x.round_ties_even().to_bits(),
                "{x}"
            );
            // Equal as numbers: negative integers give +0.0 where rem_euclid gives -0.0.
            assert_eq!(wrap_unit(x), x.rem_euclid(1.0), "{x}");
            assert_eq!(floor_small(x).to_bits(), x.floor().to_bits(), "{x}");
            if x > 0.0 {
                assert_eq!(wrap_unit(x).to_bits(), (x % 1.0).to_bits(), "{x}");
            }
            x += 0.013_671_875; // 7/512: hits exact halves and integers
        }
        for x in [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            0.499_999_97,
            1e-8,
            0.999_999_94,
        ] {
            assert_eq!(
                round_half_even(x).to_bits(),
                x.round_ties_even().to_bits(),
                "{x}"
            );
            assert_eq!(wrap_unit(x), x.rem_euclid(1.0), "{x}");
            assert_eq!(floor_small(x).to_bits(), x.floor().to_bits(), "{x}");
        }
    }

    #[test]
    fn hsv_round_trips() {
        for (r, g, b) in [
            (0.2, 0.4, 0.6),
            (1.0, 0.0, 0.0),
            (0.5, 0.5, 0.5),
            (0.1, 0.9, 0.3),
            (0.7, 0.2, 0.9),
        ] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let back = hsv_to_rgb(h, s, v);
            for (x, y) in back.iter().zip([r, g, b]) {
                assert!((x - y).abs() < 1e-6, "{r} {g} {b} -> {back:?}");
            }
        }
    }

    #[test]
    fn blur_keeps_a_constant_image_and_reflect_mirrors() {
        let size = ImageSize::new(6, 5).unwrap();
        let mut constant = PlanarImage::from_planes(size, vec![0.25; 90]).unwrap();
        gaussian_blur(&mut constant, 1.7);
        assert!(constant.data().iter().all(|x| (x - 0.25).abs() < 1e-6));
        assert_eq!(
            [-2, -1, 0, 5, 6, 7].map(|i| reflect(i, 6)),
            [2, 1, 0, 5, 4, 3]
        );
        let kernel = gaussian_kernel(1.0);
        assert!((kernel.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn quarter_turns_are_exact_and_counter_clockwise() {
        // 2x2 planes: [a b; c d] turned a quarter counter-clockwise is [b d; a c].
        let size = ImageSize::new(2, 2).unwrap();
        let data: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
        let mut img = PlanarImage::from_planes(size, data.clone()).unwrap();
        rotate(&mut img, 90.0);
        assert_eq!(&img.data()[..4], &[data[1], data[3], data[0], data[2]]);
    }

    /// Planes with every kind of value the loops meet: 0 and 1, greys, saturated colours,
    /// values a hair from the clamp bounds, and ties of the 8-bit rounding.
    fn awkward_planes(n: usize) -> Vec<f32> {
        let mut state = 0x9e37_79b9_u32;
        (0..3 * n)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => 1.0,
                2 => (i % 256) as f32 / 255.0,
                3 => ((i % 255) as f32 + 0.5) / 255.0,
                4 => 1.0 - f32::EPSILON,
                _ => {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 8) as f32 / (1 << 24) as f32
                }
            })
            .collect()
    }

    /// `data` as the three planes of `n` values each.
    fn planes(data: &mut [f32], n: usize) -> [&mut [f32]; 3] {
        let (r, rest) = data.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        [r, g, b]
    }

    #[test]
    fn the_widest_simd_gives_the_scalar_paths_bits() {
        let n = 1031; // not a multiple of any vector width
        let scalar = pulp::Scalar::new();
        let run = |dispatched: &dyn Fn(&mut [f32]), scalar: &dyn Fn(&mut [f32])| {
            let (mut wide, mut narrow) = (awkward_planes(n), awkward_planes(n));
            dispatched(&mut wide);
            scalar(&mut narrow);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&wide), bits(&narrow));
        };
        let size = ImageSize::new(n as u32, 1).unwrap();
        let with = |data: &mut [f32], op: fn(&mut PlanarImage)| {
            let mut image = PlanarImage::from_planes(size, data.to_vec()).unwrap();
            op(&mut image);
            data.copy_from_slice(image.data());
        };
        run(&|d| with(d, |i| brightness(i, 1.37)), &|d| {
            let planes = planes(d, n);
            pulp::WithSimd::with_simd(
                Blend {
                    planes,
                    other: 0.0,
                    factor: 1.37,
                },
                scalar,
            )
        });
        run(&|d| with(d, |i| saturation(i, 0.42)), &|d| {
            pulp::WithSimd::with_simd(Saturation(planes(d, n), 0.42), scalar)
        });
        run(&|d| with(d, |i| hue(i, -0.31)), &|d| {
            pulp::WithSimd::with_simd(Hue(planes(d, n), -0.31), scalar)
        });
        run(&|d| with(d, |i| gaussian_blur(i, 0.77)), &|d| {
            let (planes, kernel) = (planes(d, n), gaussian_kernel(0.77));
            pulp::WithSimd::with_simd(
                Blur {
                    planes,
                    kernel,
                    size: (n, 1),
                },
                scalar,
            )
        });
        // Rotation's resampling (coordinates in floats, then lookups) at an odd angle.
        let (w, h) = (37, 29);
        let source = awkward_planes(w * h);
        let rotated = {
            let size = ImageSize::new(w as u32, h as u32).unwrap();
            let mut image = PlanarImage::from_planes(size, source.clone()).unwrap();
            rotate(&mut image, 33.3);
            image.data().to_vec()
        };
        let RotationPlan::Resample(theta) = rotation_plan(33.3, w, h) else {
            unreachable!("33.3 degrees resamples")
        };
        let mut narrow = source.clone();
        pulp::WithSimd::with_simd(
            RotateRows {
                source: &source,
                data: &mut narrow,
                size: (w, h),
                theta,
            },
            scalar,
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&rotated), bits(&narrow));
        // The 8-bit conversions, both ways.
        let data = awkward_planes(n);
        let image = PlanarImage::from_planes(size, data.clone()).unwrap();
        let bytes = image.to_rgb8();
        let mut narrow = vec![0u8; 3 * n];
        pulp::WithSimd::with_simd(
            crate::planar::Interleave {
                planes: [&data[..n], &data[n..2 * n], &data[2 * n..]],
                pixels: &mut narrow,
            },
            scalar,
        );
        assert_eq!(bytes.pixels(), &narrow[..]);
        let back = PlanarImage::from_rgb8(&bytes);
        let mut planes_back = vec![0.0f32; 3 * n];
        let [r, g, b] = planes(&mut planes_back, n);
        pulp::WithSimd::with_simd(
            crate::planar::Deinterleave {
                pixels: bytes.pixels(),
                planes: [r, g, b],
            },
            scalar,
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(back.data()), bits(&planes_back));
    }
}
