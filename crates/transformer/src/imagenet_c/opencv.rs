//! The OpenCV 5 operations `spatter` makes, ported to give OpenCV's bytes and floats exactly:
//! `Canny` (3 x 3 Sobel, L1 magnitude), `distanceTransform(DIST_L2, 5)` (Borgefors' 5 x 5
//! chamfer in f32), the 3 x 3 `blur` of f32 and of bytes, `equalizeHist` and `filter2D` of
//! bytes with an integer kernel. `imageproc`'s namesakes differ in each (a Gaussian before its
//! Canny, an L2 magnitude, truncating equalisation, other distances).
//!
//! Every plane is row-major, `width x height`.

use std::cell::RefCell;

use super::{ScratchSlot, keep_scratch, take_scratch};

/// OpenCV's `BORDER_REFLECT_101` (its filters' default) for reads one past either end of a line
/// of `len`: `dcb|abcd|cba`.
#[inline(always)]
fn reflect_101(i: isize, len: usize) -> usize {
    let n = len as isize;
    if n == 1 {
        0
    } else if i < 0 {
        (-i) as usize
    } else if i >= n {
        (2 * n - 2 - i) as usize
    } else {
        i as usize
    }
}

/// `row` with one value either side under `BORDER_REFLECT_101`, into `padded` (its length + 2),
/// each value read through `read`.
#[inline(always)]
fn pad_reflect_101<V: Copy, T: Copy>(row: &[V], padded: &mut [T], read: impl Fn(V) -> T) {
    let len = row.len();
    for (p, &v) in padded[1..=len].iter_mut().zip(row) {
        *p = read(v);
    }
    padded[0] = read(row[reflect_101(-1, len)]);
    padded[len + 1] = read(row[reflect_101(len as isize, len)]);
}

/// The 3 x 3 neighbourhood sums of a plane under `BORDER_REFLECT_101`, of `read(value)` summed
/// in `T`: rows of three, then three rows, the order OpenCV's box filter sums in (its sums are
/// exact for the values `spatter` gives it, so the order does not change them); each row padded
/// once, then shifted slices, in SIMD lanes.
/// Both planes are buffers kept per thread in `slots` (row sums, then the result): give the
/// result back to its slot when done with it.
fn box_sums<V: Copy, T: Copy + Default + std::ops::Add<Output = T>>(
    plane: &[V],
    (width, height): (usize, usize),
    read: impl Fn(V) -> T,
    slots: [&'static ScratchSlot<T>; 2],
) -> Vec<T> {
    // Every value of both is written below.
    let mut across = take_scratch(slots[0], width * height);
    let mut out = take_scratch(slots[1], width * height);
    super::in_lanes(
        #[inline(always)]
        || {
            let mut padded = vec![T::default(); width + 2];
            for (row, sums) in plane
                .chunks_exact(width)
                .zip(across.chunks_exact_mut(width))
            {
                pad_reflect_101(row, &mut padded, &read);
                for (((o, &a), &b), &c) in sums
                    .iter_mut()
                    .zip(&padded[..width])
                    .zip(&padded[1..])
                    .zip(&padded[2..])
                {
                    *o = a + b + c;
                }
            }
            for (y, line) in out.chunks_exact_mut(width).enumerate() {
                let yi = y as isize;
                let [a, b, c] = [reflect_101(yi - 1, height), y, reflect_101(yi + 1, height)]
                    .map(|r| &across[r * width..][..width]);
                for (((o, &a), &b), &c) in line.iter_mut().zip(a).zip(b).zip(c) {
                    *o = a + b + c;
                }
            }
        },
    );
    keep_scratch(slots[0], across);
    out
}

thread_local! {
    static ACROSS_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static SUMS_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static ACROSS_U32: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static SUMS_U32: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// `cv2.blur(plane, (3, 3))` of an f32 plane: the sum in f64 times 1/9, to f32.
pub(crate) fn box_blur_f32(plane: &[f32], shape: (usize, usize)) -> Vec<f32> {
    let sums = box_sums(plane, shape, f64::from, [&ACROSS_F64, &SUMS_F64]);
    let out = super::in_lanes(
        #[inline(always)]
        || sums.iter().map(|&sum| (sum * (1.0 / 9.0)) as f32).collect(),
    );
    keep_scratch(&SUMS_F64, sums);
    out
}

/// `cv2.blur(plane, (3, 3))` of a byte plane: the sum divided by 9, rounded (never a tie).
pub(crate) fn box_blur_u8(plane: &[u8], shape: (usize, usize)) -> Vec<u8> {
    let sums = box_sums(plane, shape, u32::from, [&ACROSS_U32, &SUMS_U32]);
    let out = super::in_lanes(
        #[inline(always)]
        || sums.iter().map(|&sum| ((sum + 4) / 9) as u8).collect(),
    );
    keep_scratch(&SUMS_U32, sums);
    out
}

/// `cv2.filter2D(plane, CV_8U, kernel)` with an integer 3 x 3 kernel (a correlation, anchored
/// at the centre, `BORDER_REFLECT_101`): the exact sum, saturated to a byte; each row padded
/// once, then shifted slices, in SIMD lanes.
pub(crate) fn filter_3x3_u8(
    plane: &[u8],
    (width, height): (usize, usize),
    kernel: [[i32; 3]; 3],
) -> Vec<u8> {
    let mut padded = vec![0i32; (width + 2) * height];
    for (row, out) in plane
        .chunks_exact(width)
        .zip(padded.chunks_exact_mut(width + 2))
    {
        pad_reflect_101(row, out, i32::from);
    }
    let mut out = vec![0u8; width * height];
    let mut sums = vec![0i32; width];
    super::in_lanes(
        #[inline(always)]
        || {
            for (y, line) in out.chunks_exact_mut(width).enumerate() {
                sums.fill(0);
                for (k, weights) in kernel.iter().enumerate() {
                    let r = reflect_101(y as isize + k as isize - 1, height);
                    let row = &padded[r * (width + 2)..][..width + 2];
                    for (shift, &w) in weights.iter().enumerate() {
                        for (sum, &v) in sums.iter_mut().zip(&row[shift..][..width]) {
                            *sum += w * v;
                        }
                    }
                }
                for (o, &sum) in line.iter_mut().zip(&sums) {
                    *o = sum.clamp(0, 255) as u8;
                }
            }
        },
    );
    out
}

/// `cv2.equalizeHist` in place: the first occupied level maps to 0, each level above it to its
/// cumulative count (past the first level's) times `255 / (n - count of the first)` in f32,
/// rounded half to even; an image of one level keeps it.
pub(crate) fn equalize_histogram(plane: &mut [u8]) {
    // Four histograms, a value each in turn, summed after: with one, a run of equal values
    // waits on each count's store before the next increment.
    let mut counts = [[0u32; 256]; 4];
    let mut fours = plane.chunks_exact(4);
    for four in &mut fours {
        for (histogram, &v) in counts.iter_mut().zip(four) {
            histogram[usize::from(v)] += 1;
        }
    }
    for &v in fours.remainder() {
        counts[0][usize::from(v)] += 1;
    }
    let histogram: [u32; 256] =
        std::array::from_fn(|level| counts.iter().map(|histogram| histogram[level]).sum());
    let Some(first) = histogram.iter().position(|&c| c > 0) else {
        return;
    };
    let total = plane.len() as u32;
    if histogram[first] == total {
        return;
    }
    let scale = 255.0f32 / (total - histogram[first]) as f32;
    let mut table = [0u8; 256];
    let mut sum = 0u32;
    for level in first + 1..256 {
        sum += histogram[level];
        table[level] = (sum as f32 * scale).round_ties_even().clamp(0.0, 255.0) as u8;
    }
    for v in plane.iter_mut() {
        *v = table[*v as usize];
    }
}

/// `cv2.Canny(plane, low, high)` with its defaults (3 x 3 Sobel of the edge-replicated plane,
/// L1 magnitude): 255 on edges, 0 elsewhere. A pixel is a candidate where its magnitude passes
/// `low` and is a maximum across the gradient (OpenCV's integer direction test); edges are the
/// candidates 8-connected to one whose magnitude passes `high`.
pub(crate) fn canny(plane: &[u8], (width, height): (usize, usize), low: i32, high: i32) -> Vec<u8> {
    let n = width * height;
    // The plane with a replicated frame, as i32 (the Sobel sums row by row, in SIMD-friendly
    // slices); the gradients; the magnitudes with a frame. In one buffer kept per thread:
    // fresh ones cost more in page faults than the Sobel itself.
    let stride = width + 2;
    let framed = stride * (height + 2);
    let mut buffer = take_scratch(&CANNY, 2 * framed + 2 * n);
    let (padded, rest) = buffer.split_at_mut(framed);
    let (magnitude, rest) = rest.split_at_mut(framed);
    let (dx, dy) = rest.split_at_mut(n);
    for y in 0..height + 2 {
        let source = &plane[y.saturating_sub(1).min(height - 1) * width..][..width];
        let row = &mut padded[y * stride..][..stride];
        row[0] = i32::from(source[0]);
        row[stride - 1] = i32::from(source[width - 1]);
        for (p, &v) in row[1..=width].iter_mut().zip(source) {
            *p = i32::from(v);
        }
    }
    // Magnitudes with a frame of zeros (OpenCV reads 0 outside the image).
    magnitude[..stride].fill(0);
    magnitude[(height + 1) * stride..].fill(0);
    for row in magnitude.chunks_exact_mut(stride) {
        row[0] = 0;
        row[stride - 1] = 0;
    }
    for y in 0..height {
        let [above, here, below] = std::array::from_fn(|k| &padded[(y + k) * stride..][..stride]);
        let (gx_row, gy_row) = (&mut dx[y * width..][..width], &mut dy[y * width..][..width]);
        let m_row = &mut magnitude[(y + 1) * stride + 1..][..width];
        for x in 0..width {
            let gx =
                (above[x + 2] - above[x]) + 2 * (here[x + 2] - here[x]) + (below[x + 2] - below[x]);
            let gy = (below[x] - above[x])
                + 2 * (below[x + 1] - above[x + 1])
                + (below[x + 2] - above[x + 2]);
            gx_row[x] = gx;
            gy_row[x] = gy;
            m_row[x] = gx.abs() + gy.abs();
        }
    }
    // States with a frame (never a candidate), as the magnitudes: the hysteresis then visits a
    // pixel's neighbours at fixed offsets, without a bounds test.
    let mut state = take_scratch(&STATES, framed);
    state.fill(edge::NO);
    let mut stack = take_scratch(&STACK, 0);
    pulp::Arch::new().dispatch(Suppress {
        magnitude,
        gradients: (dx, dy),
        state: &mut state,
        stack: &mut stack,
        shape: (width, height),
        thresholds: (low, high),
    });
    keep_scratch(&CANNY, buffer);
    hysteresis(state, stack, (width, height))
}

thread_local! {
    static CANNY: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
    static STATES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static STACK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A pixel's state in Canny, a byte (a u32 lane while the suppression computes it): not an
/// edge, a candidate (a maximum past the low threshold), or an edge.
mod edge {
    pub(super) const NO: u8 = 0;
    pub(super) const CANDIDATE: u8 = 1;
    pub(super) const YES: u8 = 2;
}

/// tan(22.5 degrees) in OpenCV's 15-bit fixed point, and its test for 67.5 degrees
/// (`tg22x + (ax << 16)`), in i32: a Sobel gradient is at most 4 x 255, and 1020 x 79,109 <
/// 2^31.
const TAN_22: i32 = 13_573;
const TAN_67: i32 = TAN_22 + (1 << 16);

/// OpenCV's direction test and thresholds in Canny: a pixel's state from its gradients and the
/// framed magnitudes around it (`[above, here, below]`, each `[left, middle, right]`, its own in
/// the middle). The gradient is across (within 22.5 degrees of the x axis), along (beyond 67.5),
/// or diagonal, and the pixel is a candidate where its magnitude passes `low` and is a maximum
/// against its two neighbours that way.
#[inline(always)]
fn pixel_state((gx, gy): (i32, i32), around: [[i32; 3]; 3], (low, high): (i32, i32)) -> u8 {
    let [
        [up_left, up, up_right],
        [left, m, right],
        [down_left, down, down_right],
    ] = around;
    if m <= low {
        return edge::NO;
    }
    let (ax, ay) = (gx.abs(), gy.abs() * (1 << 15));
    let maximum = if ay < ax * TAN_22 {
        m > left && m >= right
    } else if ay > ax * TAN_67 {
        m > up && m >= down
    } else if (gx ^ gy) < 0 {
        m > up_right && m > down_left
    } else {
        m > up_left && m > down_right
    };
    match (maximum, m > high) {
        (false, _) => edge::NO,
        (true, false) => edge::CANDIDATE,
        (true, true) => edge::YES,
    }
}

/// Canny's non-maximum suppression and thresholds ([`pixel_state`]) over the image, a vector
/// of pixels at a time: every way's test and both neighbours' compares in all lanes, then
/// selects, where the loop by pixel branched on each (LLVM kept that loop, and branch-free
/// forms of it, scalar). The edges go on `stack` in the image's order.
struct Suppress<'a> {
    /// Framed as the states.
    magnitude: &'a [i32],
    gradients: (&'a [i32], &'a [i32]),
    state: &'a mut [u8],
    stack: &'a mut Vec<usize>,
    shape: (usize, usize),
    thresholds: (i32, i32),
}

impl pulp::WithSimd for Suppress<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let (width, height) = self.shape;
        let stride = width + 2;
        let lanes = std::mem::size_of::<S::u32s>() / 4;
        let (low, high) = self.thresholds;
        let zero = simd.splat_i32s(0);
        let [low_v, high_v] = [low, high].map(|t| simd.splat_i32s(t));
        let [tan_22, tan_67, shift] = [TAN_22, TAN_67, 1 << 15].map(|t| simd.splat_i32s(t));
        let (candidate, yes, no) = (
            simd.splat_u32s(edge::CANDIDATE.into()),
            simd.splat_u32s(edge::YES.into()),
            simd.splat_u32s(edge::NO.into()),
        );
        let ones = simd.splat_u32s(u32::MAX);
        // Which vectors of a row hold an edge; the row's states in u32 lanes.
        let mut with_edges = Vec::new();
        let mut lanes_of_row = vec![0u32; width];
        for y in 0..height {
            // Image row y is framed row y + 1, column x framed column x + 1.
            let rows: [[&[i32]; 3]; 3] = std::array::from_fn(|k| {
                std::array::from_fn(|j| &self.magnitude[(y + k) * stride + j..][..width])
            });
            let (gx, gy) = (
                &self.gradients.0[y * width..][..width],
                &self.gradients.1[y * width..][..width],
            );
            let around = rows.map(|row| row.map(|values| S::as_simd_i32s(values).0));
            let (gx_v, gy_v) = (S::as_simd_i32s(gx).0, S::as_simd_i32s(gy).0);
            let framed_row = (y + 1) * stride + 1;
            let out = &mut lanes_of_row[..];
            let (out_vectors, _) = S::as_mut_simd_u32s(out);
            let whole = out_vectors.len() * lanes;
            with_edges.clear();
            for (v, out) in out_vectors.iter_mut().enumerate() {
                // Each read on its own: arrays of vectors built by `map` were `memcpy` calls.
                let [above, here, below] = &around;
                let (up_left, up, up_right) = (above[0][v], above[1][v], above[2][v]);
                let (left, m, right) = (here[0][v], here[1][v], here[2][v]);
                let (down_left, down, down_right) = (below[0][v], below[1][v], below[2][v]);
                let (gx, gy) = (gx_v[v], gy_v[v]);
                let ax = simd.max_i32s(gx, simd.sub_i32s(zero, gx));
                let ay = simd.mul_i32s(simd.max_i32s(gy, simd.sub_i32s(zero, gy)), shift);
                let across = simd.less_than_i32s(ay, simd.mul_i32s(ax, tan_22));
                let along = simd.greater_than_i32s(ay, simd.mul_i32s(ax, tan_67));
                let rising = simd.less_than_i32s(simd.xor_i32s(gx, gy), zero);
                // All ones where `m` is past the neighbour before and past (or level with) the
                // one after: masks are bits on some widths, so the choice of a way is made
                // between lanes of ones and zeros.
                let pair = |before: S::i32s, after: S::i32s, or_level: bool| {
                    let past_after = if or_level {
                        simd.greater_than_or_equal_i32s(m, after)
                    } else {
                        simd.greater_than_i32s(m, after)
                    };
                    let both = simd.and_m32s(simd.greater_than_i32s(m, before), past_after);
                    simd.select_u32s(both, ones, no)
                };
                let diagonal = simd.select_u32s(
                    rising,
                    pair(up_right, down_left, false),
                    pair(up_left, down_right, false),
                );
                let maximum = simd.select_u32s(
                    across,
                    pair(left, right, true),
                    simd.select_u32s(along, pair(up, down, true), diagonal),
                );
                let past_low = simd.greater_than_i32s(m, low_v);
                let past_high = simd.greater_than_i32s(m, high_v);
                let level =
                    simd.select_u32s(past_high, yes, simd.select_u32s(past_low, candidate, no));
                *out = simd.and_u32s(maximum, level);
                let is_edge = simd.equal_u32s(*out, yes);
                if simd.first_true_m32s(is_edge) < lanes {
                    with_edges.push(v);
                }
            }
            // The pixels past the last whole vector, one by one.
            for x in whole..width {
                let around = rows.map(|row| row.map(|values| values[x]));
                out[x] = pixel_state((gx[x], gy[x]), around, (low, high)).into();
            }
            // The states as bytes (a narrowing store per vector).
            for (state, &lane) in self.state[framed_row..][..width].iter_mut().zip(&*out) {
                *state = lane as u8;
            }
            for &v in &with_edges {
                for (x, &s) in out[v * lanes..][..lanes].iter().enumerate() {
                    if s == u32::from(edge::YES) {
                        self.stack.push(framed_row + v * lanes + x);
                    }
                }
            }
            for (x, &s) in out.iter().enumerate().skip(whole) {
                if s == u32::from(edge::YES) {
                    self.stack.push(framed_row + x);
                }
            }
        }
    }
}

/// Canny's hysteresis on states with a frame of one pixel: from the edges on `stack` (framed
/// places), every 8-connected candidate becomes an edge; then 255 on edges, 0 elsewhere, without
/// the frame.
fn hysteresis(
    mut state: Vec<u8>,
    mut stack: Vec<usize>,
    (width, height): (usize, usize),
) -> Vec<u8> {
    let stride = width + 2;
    let neighbours = [
        -(stride as isize) - 1,
        -(stride as isize),
        -(stride as isize) + 1,
        -1,
        1,
        stride as isize - 1,
        stride as isize,
        stride as isize + 1,
    ];
    while let Some(i) = stack.pop() {
        for offset in neighbours {
            // Inside the frame: a framed place has every neighbour.
            let j = i.wrapping_add_signed(offset);
            if state[j] == edge::CANDIDATE {
                state[j] = edge::YES;
                stack.push(j);
            }
        }
    }
    let mut edges = vec![0u8; width * height];
    for (out, row) in edges
        .chunks_exact_mut(width)
        .zip(state[stride..].chunks_exact(stride))
    {
        for (e, &s) in out.iter_mut().zip(&row[1..]) {
            *e = if s == edge::YES { 255 } else { 0 };
        }
    }
    keep_scratch(&STATES, state);
    keep_scratch(&STACK, stack);
    edges
}

/// The chamfer steps of `DIST_L2` with a 5 x 5 mask: across, diagonal, a knight's move.
const ACROSS: f32 = 1.0;
const DIAGONAL: f32 = 1.4;
const KNIGHT: f32 = 2.1969;

/// `min(cv2.distanceTransform(plane, DIST_L2, 5), cap)`: each pixel's distance to the nearest
/// zero pixel along a path of steps of 1 (across), 1.4 (diagonal) and 2.1969 (a knight's move),
/// in f32, by a forward and a backward pass, then at most `cap`. Without a zero pixel every
/// distance is infinite (then `cap`).
///
/// Each pass takes, per row, the minimum over the two rows before it (in SIMD-friendly slices),
/// then runs along the row for the step from the previous pixel: the same sums and minima as
/// OpenCV's pixel-by-pixel loop (a minimum does not depend on its order).
///
/// Under a finite cap, the run along a row is not a serial chain of additions and minima (five
/// cycles a pixel, twice) but a few passes over the row in lanes ([`chain_in_lanes`]). This is
/// exact below the cap, and a value at or above it stays so: every step adds a positive length
/// and rounding is monotonic, so a value at or above the cap only leads to values at or above
/// it, and a minimum below the cap is one term's, which reads only values below the cap. A run
/// of `k` steps of 1 adds at least `k - 1e-5`, so only the last `cap + 2` values of a run can
/// give a value below the cap.
pub(crate) fn distance_transform(plane: &[u8], shape: (usize, usize), cap: f32) -> Vec<f32> {
    super::in_lanes(
        #[inline(always)]
        || distance_passes(plane, shape, cap),
    )
}

/// The smaller of two distances (never NaN): one `minss`, where `f32::min`'s NaN rule takes
/// three instructions on the pass's serial chain.
#[inline(always)]
fn smaller(a: f32, b: f32) -> f32 {
    if a < b { a } else { b }
}

/// How many of a run's last values [`chain_in_lanes`] reads for a cap (see
/// [`distance_transform`]); `None` (the serial chain) past any row's length.
fn chain_reach(cap: f32, width: usize) -> Option<usize> {
    (cap.is_finite() && cap + 2.0 < width as f32).then(|| (cap.max(0.0) + 2.0).ceil() as usize)
}

/// [`distance_transform`]'s two passes, inlined into its SIMD dispatch.
#[inline(always)]
fn distance_passes(plane: &[u8], (width, height): (usize, usize), cap: f32) -> Vec<f32> {
    // A frame of two rows and columns at infinity.
    let stride = width + 4;
    let reach = chain_reach(cap, width);
    let mut d = vec![f32::INFINITY; stride * (height + 4)];
    let mut best = vec![0.0f32; width];
    let mut spare = vec![0.0f32; width];
    for y in 0..height {
        let row = (y + 2) * stride;
        {
            let up2 = &d[row - 2 * stride..][..stride];
            let up = &d[row - stride..][..stride];
            // Column x of the image is x + 2 of the framed rows.
            for (x, b) in best.iter_mut().enumerate() {
                *b = [
                    up2[x + 3] + KNIGHT,
                    up[x] + KNIGHT,
                    up[x + 1] + DIAGONAL,
                    up[x + 2] + ACROSS,
                    up[x + 3] + DIAGONAL,
                    up[x + 4] + KNIGHT,
                ]
                .into_iter()
                .fold(up2[x + 1] + KNIGHT, smaller);
            }
        }
        let source = &plane[y * width..][..width];
        if let Some(reach) = reach {
            // A zero pixel is 0, below anything the run brings.
            for (b, &s) in best.iter_mut().zip(source) {
                *b = if s == 0 { 0.0 } else { *b };
            }
            chain_in_lanes(&mut best, &mut spare, reach, Direction::Right);
            d[row + 2..][..width].copy_from_slice(&best);
            continue;
        }
        let out = &mut d[row + 1..][..width + 1];
        for x in 0..width {
            out[x + 1] = if source[x] == 0 {
                0.0
            } else {
                smaller(best[x], out[x] + ACROSS)
            };
        }
    }
    let mut result = vec![0.0f32; width * height];
    for y in (0..height).rev() {
        let row = (y + 2) * stride;
        {
            let down2 = &d[row + 2 * stride..][..stride];
            let down = &d[row + stride..][..stride];
            let here = &d[row + 2..][..width];
            for (x, b) in best.iter_mut().enumerate() {
                *b = [
                    here[x],
                    down2[x + 1] + KNIGHT,
                    down[x + 4] + KNIGHT,
                    down[x + 3] + DIAGONAL,
                    down[x + 2] + ACROSS,
                    down[x + 1] + DIAGONAL,
                    down[x] + KNIGHT,
                ]
                .into_iter()
                .fold(down2[x + 3] + KNIGHT, smaller);
            }
        }
        let out = &mut d[row + 2..][..width + 1];
        if let Some(reach) = reach {
            chain_in_lanes(&mut best, &mut spare, reach, Direction::Left);
            out[..width].copy_from_slice(&best);
        } else {
            for x in (0..width).rev() {
                out[x] = smaller(best[x], out[x + 1] + ACROSS);
            }
        }
        for (r, &v) in result[y * width..][..width].iter_mut().zip(&out[..width]) {
            *r = smaller(v, cap);
        }
    }
    result
}

/// Which way a pass runs along a row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Right,
    Left,
}

/// A pass's run along a row in lanes: `values[x] = min(values[x], values[x -+ 1] + 1)` from one
/// end to the other, for the runs of at most `reach` values (see [`distance_transform`]).
/// Doubling: after a step of `s` over a form that holds each value's best run of fewer than `r`
/// values, `min(v[x], v[x -+ s] + 1 + ... + 1)` (`s` additions, as the chain rounds them; a
/// minimum commutes with them, rounding being monotonic) holds the best of fewer than `r + s`.
#[inline(always)]
fn chain_in_lanes(values: &mut Vec<f32>, spare: &mut Vec<f32>, reach: usize, way: Direction) {
    let mut covered = 1;
    while covered < reach {
        let step = covered.min(8);
        match step {
            1 => chain_step::<1>(values, spare, way),
            2 => chain_step::<2>(values, spare, way),
            4 => chain_step::<4>(values, spare, way),
            _ => chain_step::<8>(values, spare, way),
        }
        std::mem::swap(values, spare);
        covered += step;
    }
}

/// One doubling step of [`chain_in_lanes`], from `values` into `next`.
#[inline(always)]
fn chain_step<const S: usize>(values: &[f32], next: &mut [f32], way: Direction) {
    let w = values.len();
    if S >= w {
        next.copy_from_slice(values);
        return;
    }
    let run = |from: f32| {
        let mut v = from;
        for _ in 0..S {
            v += ACROSS;
        }
        v
    };
    let (kept, moved, here, from) = match way {
        Direction::Right => {
            let (kept, moved) = next.split_at_mut(S);
            (kept, moved, &values[S..], &values[..w - S])
        }
        Direction::Left => {
            let (moved, kept) = next.split_at_mut(w - S);
            (kept, moved, &values[..w - S], &values[S..])
        }
    };
    kept.copy_from_slice(match way {
        Direction::Right => &values[..S],
        Direction::Left => &values[w - S..],
    });
    for ((n, &h), &f) in moved.iter_mut().zip(here).zip(from) {
        *n = smaller(h, run(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pixel's state in the reference: not an edge, a candidate, or an edge.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Edge {
        No,
        Candidate,
        Yes,
    }

    /// [`canny`] pixel by pixel, each read clamped: the form first checked against the package,
    /// now the reference of the row-wise one.
    fn canny_by_pixel(
        plane: &[u8],
        (width, height): (usize, usize),
        low: i32,
        high: i32,
    ) -> Vec<u8> {
        let (w, h) = (width as isize, height as isize);
        let at = |y: isize, x: isize| {
            i32::from(plane[(y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) as usize])
        };
        let n = width * height;
        let mut dx = vec![0i32; n];
        let mut dy = vec![0i32; n];
        // Magnitudes with a frame of zeros (OpenCV reads 0 outside the image).
        let stride = width + 2;
        let mut magnitude = vec![0i32; stride * (height + 2)];
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) as usize;
                let gx = (at(y - 1, x + 1) - at(y - 1, x - 1))
                    + 2 * (at(y, x + 1) - at(y, x - 1))
                    + (at(y + 1, x + 1) - at(y + 1, x - 1));
                let gy = (at(y + 1, x - 1) - at(y - 1, x - 1))
                    + 2 * (at(y + 1, x) - at(y - 1, x))
                    + (at(y + 1, x + 1) - at(y - 1, x + 1));
                dx[i] = gx;
                dy[i] = gy;
                magnitude[(y as usize + 1) * stride + x as usize + 1] = gx.abs() + gy.abs();
            }
        }
        // tan(22.5 degrees) in OpenCV's 15-bit fixed point.
        const TG22: i64 = 13573;
        let mut state = vec![Edge::No; n];
        let mut stack = Vec::new();
        for y in 0..height {
            for x in 0..width {
                let i = y * width + x;
                let m = magnitude[(y + 1) * stride + x + 1];
                if m <= low {
                    continue;
                }
                let at_m = |dy: isize, dx: isize| {
                    magnitude
                        [((y as isize + 1 + dy) as usize) * stride + (x as isize + 1 + dx) as usize]
                };
                let (gx, gy) = (dx[i], dy[i]);
                let ax = i64::from(gx.abs());
                let ay = i64::from(gy.abs()) << 15;
                let tg22x = ax * TG22;
                let maximum = if ay < tg22x {
                    m > at_m(0, -1) && m >= at_m(0, 1)
                } else if ay > tg22x + (ax << 16) {
                    m > at_m(-1, 0) && m >= at_m(1, 0)
                } else {
                    let s = if (gx ^ gy) < 0 { -1 } else { 1 };
                    m > at_m(-1, -s) && m > at_m(1, s)
                };
                if !maximum {
                    continue;
                }
                if m > high {
                    state[i] = Edge::Yes;
                    stack.push(i);
                } else {
                    state[i] = Edge::Candidate;
                }
            }
        }
        hysteresis_by_pixel(state, stack, width)
    }

    /// The hysteresis on unframed states, each neighbour tested against the image's bounds.
    fn hysteresis_by_pixel(mut state: Vec<Edge>, mut stack: Vec<usize>, width: usize) -> Vec<u8> {
        let (w, h) = (width as isize, (state.len() / width) as isize);
        while let Some(i) = stack.pop() {
            let (y, x) = ((i / width) as isize, (i % width) as isize);
            for (ny, nx) in (-1..=1).flat_map(|a| (-1..=1).map(move |b| (y + a, x + b))) {
                if ny < 0 || nx < 0 || ny >= h || nx >= w {
                    continue;
                }
                let j = (ny * w + nx) as usize;
                if state[j] == Edge::Candidate {
                    state[j] = Edge::Yes;
                    stack.push(j);
                }
            }
        }
        state
            .into_iter()
            .map(|s| if s == Edge::Yes { 255 } else { 0 })
            .collect()
    }

    /// [`distance_transform`] pixel by pixel, as OpenCV's loop runs: the form first checked against
    /// the package, now the reference of the row-wise one.
    fn distance_by_pixel(plane: &[u8], (width, height): (usize, usize)) -> Vec<f32> {
        // A frame of two rows and columns at infinity.
        let stride = width + 4;
        let mut d = vec![f32::INFINITY; stride * (height + 4)];
        let idx = |y: usize, x: usize| (y + 2) * stride + x + 2;
        for y in 0..height {
            for x in 0..width {
                let i = idx(y, x);
                if plane[y * width + x] == 0 {
                    d[i] = 0.0;
                    continue;
                }
                let up = i - stride;
                let up2 = i - 2 * stride;
                let candidates = [
                    d[up2 - 1] + KNIGHT,
                    d[up2 + 1] + KNIGHT,
                    d[up - 2] + KNIGHT,
                    d[up - 1] + DIAGONAL,
                    d[up] + ACROSS,
                    d[up + 1] + DIAGONAL,
                    d[up + 2] + KNIGHT,
                    d[i - 1] + ACROSS,
                ];
                d[i] = candidates.into_iter().fold(f32::INFINITY, f32::min);
            }
        }
        let mut out = vec![0.0f32; width * height];
        for y in (0..height).rev() {
            for x in (0..width).rev() {
                let i = idx(y, x);
                let mut best = d[i];
                if best > ACROSS {
                    let down = i + stride;
                    let down2 = i + 2 * stride;
                    let candidates = [
                        d[down2 + 1] + KNIGHT,
                        d[down2 - 1] + KNIGHT,
                        d[down + 2] + KNIGHT,
                        d[down + 1] + DIAGONAL,
                        d[down] + ACROSS,
                        d[down - 1] + DIAGONAL,
                        d[down - 2] + KNIGHT,
                        d[i + 1] + ACROSS,
                    ];
                    best = candidates.into_iter().fold(best, f32::min);
                    d[i] = best;
                }
                out[y * width + x] = best;
            }
        }
        out
    }

    /// Each pixel's 3 x 3 neighbourhood (`BORDER_REFLECT_101`) weighed by `kernel`, summed in
    /// f64 pixel by pixel.
    fn neighbourhood_by_pixel<V: Copy + Into<f64>>(
        plane: &[V],
        (width, height): (usize, usize),
        kernel: &[[f64; 3]; 3],
    ) -> Vec<f64> {
        let mut out = vec![0.0; width * height];
        for y in 0..height {
            for x in 0..width {
                for (dy, weights) in kernel.iter().enumerate() {
                    let r = reflect_101(y as isize + dy as isize - 1, height);
                    for (dx, &weight) in weights.iter().enumerate() {
                        let c = reflect_101(x as isize + dx as isize - 1, width);
                        out[y * width + x] += weight * plane[r * width + c].into();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn canny_in_lanes_is_canny_by_pixel_on_noise() {
        // Noise turns every way and ties neighbours often; widths with and without a short
        // last vector, thresholds low enough that most pixels are tested.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for (w, h) in [(37, 29), (64, 48), (5, 7), (130, 3)] {
            for smooth in [1, 3] {
                let plane: Vec<u8> = (0..w * h)
                    .map(|i| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        // Coarser levels for the smoother planes: more equal neighbours.
                        (((state >> 56) as u8) / smooth * smooth).wrapping_add((i % w) as u8 / 8)
                    })
                    .collect();
                for (low, high) in [(50, 150), (10, 30), (0, 400)] {
                    assert_eq!(
                        canny(&plane, (w, h), low, high),
                        canny_by_pixel(&plane, (w, h), low, high),
                        "{w}x{h} {smooth} {low} {high}"
                    );
                }
            }
        }
    }

    #[test]
    fn row_wise_forms_are_the_pixel_by_pixel_forms() {
        // Thresholded smooth fields like spatter's (runs of zeros, ramps, plateaus), at odd
        // sizes, including a line and a single pixel.
        for (index, (w, h)) in [(1, 1), (1, 9), (13, 1), (37, 29), (64, 48)]
            .into_iter()
            .enumerate()
        {
            let plane: Vec<u8> = (0..w * h)
                .map(|i| {
                    let (x, y) = ((i % w) as f64, (i / w) as f64);
                    let v = 120.0 + 90.0 * ((x * 0.37 + index as f64).sin() * (y * 0.23).cos());
                    if v < 150.0 { 0 } else { v as u8 }
                })
                .collect();
            assert_eq!(
                canny(&plane, (w, h), 50, 150),
                canny_by_pixel(&plane, (w, h), 50, 150),
                "{w}x{h}"
            );
            // The blurs and the emboss against their per-pixel sums.
            let floats: Vec<f32> = plane.iter().map(|&v| f32::from(v) * 0.37).collect();
            let blurred: Vec<f32> = neighbourhood_by_pixel(&floats, (w, h), &[[1.0; 3]; 3])
                .iter()
                .map(|&sum| (sum * (1.0 / 9.0)) as f32)
                .collect();
            assert_eq!(box_blur_f32(&floats, (w, h)), blurred, "{w}x{h}");
            let blurred: Vec<u8> = neighbourhood_by_pixel(&plane, (w, h), &[[1.0; 3]; 3])
                .iter()
                .map(|&sum| ((sum as u32 + 4) / 9) as u8)
                .collect();
            assert_eq!(box_blur_u8(&plane, (w, h)), blurred, "{w}x{h}");
            let emboss = [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]];
            let weights = emboss.map(|row| row.map(f64::from));
            let embossed: Vec<u8> = neighbourhood_by_pixel(&plane, (w, h), &weights)
                .iter()
                .map(|&sum| sum.clamp(0.0, 255.0) as u8)
                .collect();
            assert_eq!(filter_3x3_u8(&plane, (w, h), emboss), embossed, "{w}x{h}");
            let edges = canny(&plane, (w, h), 50, 150);
            if w * h > 1000 {
                assert!(edges.contains(&255), "{w}x{h}: edges to compare");
            }
            let away: Vec<u8> = edges.iter().map(|e| 255 - e).collect();
            for source in [&plane, &away] {
                let reference = distance_by_pixel(source, (w, h));
                // Uncapped (the serial chain), spatter's cap, and caps below, at and past a
                // row's length (the runs in lanes, or the chain again).
                for cap in [f32::INFINITY, 20.0, 0.5, 3.0, 7.3, 1000.0] {
                    let fast = distance_transform(source, (w, h), cap);
                    let want = reference.iter().map(|&d| if d > cap { cap } else { d });
                    assert!(
                        fast.iter()
                            .zip(want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{w}x{h} {cap}"
                    );
                }
            }
        }
    }

    #[test]
    fn runs_in_lanes_are_the_serial_chain_below_the_cap() {
        // Small values with every mantissa bit in use, far apart, so that long runs from them
        // cross powers of two and round there (a single `+ k`, or `+ 1 + 2 + 4`, rounds
        // differently for about one start in a hundred); large ones, zeros and infinities as
        // the passes have them.
        let mut unit = crate::imagenet_c::test_units(11);
        for row in 0..300 {
            let values: Vec<f32> = (0..61)
                .map(|_| {
                    let u = unit();
                    match (u * 100.0) as u32 {
                        0 => 0.0,
                        1..=10 => (u * 40.0) as f32,
                        11..=40 => f32::INFINITY,
                        _ => 20.0 + (u * 10.0) as f32,
                    }
                })
                .collect();
            for cap in [20.0f32, 2.5, 11.0] {
                let reach = chain_reach(cap, values.len()).expect("a cap below the row");
                for way in [Direction::Right, Direction::Left] {
                    let mut serial = values.clone();
                    let order: Vec<usize> = match way {
                        Direction::Right => (1..serial.len()).collect(),
                        Direction::Left => (0..serial.len() - 1).rev().collect(),
                    };
                    for x in order {
                        let previous = if way == Direction::Right {
                            x - 1
                        } else {
                            x + 1
                        };
                        serial[x] = smaller(serial[x], serial[previous] + ACROSS);
                    }
                    let mut lanes = values.clone();
                    chain_in_lanes(&mut lanes, &mut vec![0.0; values.len()], reach, way);
                    for (x, (&got, &want)) in lanes.iter().zip(&serial).enumerate() {
                        let (got, want) = (smaller(got, cap), smaller(want, cap));
                        assert_eq!(got.to_bits(), want.to_bits(), "row {row} x {x} cap {cap}");
                    }
                }
            }
        }
    }

    #[test]
    fn reflect_101_mirrors_without_repeating_the_edge() {
        assert_eq!(reflect_101(-1, 5), 1);
        assert_eq!(reflect_101(5, 5), 3);
        assert_eq!(reflect_101(2, 5), 2);
        assert_eq!(reflect_101(-1, 1), 0);
    }

    #[test]
    fn distances_are_chamfer_steps_from_the_nearest_zero() {
        let mut plane = vec![255u8; 7 * 7];
        plane[3 * 7 + 3] = 0;
        let d = distance_transform(&plane, (7, 7), f32::INFINITY);
        assert_eq!(d[3 * 7 + 3], 0.0);
        assert_eq!(d[3 * 7 + 4], 1.0);
        assert_eq!(d[4 * 7 + 4], 1.4);
        assert_eq!(d[5 * 7 + 4], 2.1969);
        assert_eq!(d[3 * 7 + 6], 3.0);
        assert!(
            distance_transform(&[9u8; 4], (2, 2), f32::INFINITY)
                .iter()
                .all(|d| d.is_infinite())
        );
    }

    #[test]
    fn equalisation_spreads_levels_and_keeps_a_flat_image() {
        let mut plane = vec![10u8, 10, 20, 30];
        equalize_histogram(&mut plane);
        assert_eq!(plane, [0, 0, 128, 255]);
        let mut flat = vec![7u8; 5];
        equalize_histogram(&mut flat);
        assert_eq!(flat, [7; 5]);
        // Counted four at a time with a remainder of three (the last value counts): the first
        // level 0, the others their cumulative counts past it times 255 / 5.
        let mut plane = vec![5u8, 9, 9, 5, 200, 9, 200];
        equalize_histogram(&mut plane);
        assert_eq!(plane, [0, 153, 153, 0, 255, 153, 255]);
    }

    #[test]
    fn canny_finds_a_step_edge_once() {
        // A vertical step: one column of edges where the gradient peaks.
        let (w, h) = (8, 6);
        let plane: Vec<u8> = (0..w * h)
            .map(|i| if i % w < 4 { 0 } else { 200 })
            .collect();
        let edges = canny(&plane, (w, h), 50, 150);
        for y in 0..h {
            let row = &edges[y * w..][..w];
            assert_eq!(row.iter().filter(|&&e| e == 255).count(), 1, "{row:?}");
        }
        assert!(canny(&[90u8; 25], (5, 5), 50, 150).iter().all(|&e| e == 0));
    }

    #[test]
    fn box_blurs_average_and_the_emboss_saturates() {
        let plane: Vec<u8> = (0..16).map(|i| (i * 16) as u8).collect();
        let blurred = box_blur_u8(&plane, (4, 4));
        // Inside: the mean of the 3 x 3 neighbourhood, rounded.
        let inside: u32 = [0, 1, 2, 4, 5, 6, 8, 9, 10].iter().map(|&i| i * 16).sum();
        assert_eq!(u32::from(blurred[5]), (inside + 4) / 9);
        let floats: Vec<f32> = plane.iter().map(|&v| f32::from(v)).collect();
        let f = box_blur_f32(&floats, (4, 4));
        assert_eq!(f[5], (f64::from(inside) * (1.0 / 9.0)) as f32);
        let emboss = [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]];
        let out = filter_3x3_u8(&[255u8; 9], (3, 3), emboss);
        assert_eq!(out, [255; 9]);
    }
}
