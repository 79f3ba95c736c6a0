//! `defocus_blur`'s kernel and filter: the package's `disk` (an aliased disk of `radius` on a
//! square grid, normalised in f32, then `cv2.GaussianBlur` with a 3x3 or 5x5 kernel and
//! OpenCV's default `BORDER_REFLECT_101` applied to the kernel image itself) and
//! `cv2.filter2D` (a correlation over the non-zero taps, anchor at the centre,
//! `BORDER_REFLECT_101`). Where the blur stays inside the grid (radius below 7, severities 0
//! to 3 and the levels between), [`DiskBlur`] sums the disk and the blur apart; beyond, the
//! kernel's taps are summed in runs ([`filter_2d`]).

use super::{keep_scratch, rounded_unit_byte_lanes, set_places, take_scratch};
use crate::ops::reflect as reflect_101;

/// `cv2.getGaussianKernel(ksize, sigma, CV_32F)`: weights computed in f64, scaled by the
/// inverse of their sum and rounded to f32.
fn gaussian_kernel_f32(ksize: usize, sigma: f64) -> Vec<f32> {
    if sigma * sigma == 0.0 {
        // The limit as sigma goes to 0 (OpenCV would derive a sigma from ksize instead).
        return (0..ksize)
            .map(|i| if i == ksize / 2 { 1.0 } else { 0.0 })
            .collect();
    }
    let scale = -0.5 / (sigma * sigma);
    let raw: Vec<f64> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize as f64 - 1.0) * 0.5;
            (scale * x * x).exp()
        })
        .collect();
    let inverse = 1.0 / raw.iter().sum::<f64>();
    raw.iter().map(|w| (w * inverse) as f32).collect()
}

/// The package's grid for `radius`: its half side, and the size of the anti-aliasing blur.
/// The grid is `-8..=8` up to radius 8 (3x3 blur) and `-ceil(r)..=ceil(r)` above (5x5 blur);
/// for a fractional radius above 8 the package's `arange(-r, r + 1)` would make a
/// half-integer grid of even length whose centre is half a pixel off, so the grid stays on
/// whole pixels (at whole radii the two are the same).
fn grid(radius: f64) -> (isize, usize) {
    if radius <= 8.0 {
        (8, 3)
    } else {
        (radius.ceil() as isize, 5)
    }
}

/// Whether grid cell (x, y) is in the aliased disk (`X**2 + Y**2 <= radius**2`).
fn inside(x: isize, y: isize, radius: f64) -> bool {
    ((x * x + y * y) as f64) <= radius * radius
}

/// The package's `disk(radius, alias_blur)` as a `side x side` kernel (row-major), widened to
/// f64 as `filter2D` widens it for an f64 image.
pub(crate) fn disk(radius: f64, alias_blur: f64) -> (Vec<f64>, usize) {
    kernel(radius, alias_blur, |v| f64::from(v as f32))
}

/// The package's `disk` with its cells' f32 weight and each later operation's result passed
/// through `round`: rounding to f32 gives the package's kernel (an f32 operation is the f64
/// one rounded to f32), the identity the exact kernel that [`DiskBlur`] splits.
fn kernel(radius: f64, alias_blur: f64, round: impl Fn(f64) -> f64) -> (Vec<f64>, usize) {
    let (half, ksize) = grid(radius);
    let side = (2 * half + 1) as usize;
    let mut aliased: Vec<f64> = Vec::with_capacity(side * side);
    for y in -half..=half {
        for x in -half..=half {
            aliased.push(if inside(x, y, radius) { 1.0 } else { 0.0 });
        }
    }
    // `aliased /= np.sum(aliased)` in f32 (the count is exact), in both kernels: the weight
    // every disk cell has.
    let count: f64 = aliased.iter().sum();
    for a in &mut aliased {
        *a = f64::from((*a / count) as f32);
    }
    let g: Vec<f64> = gaussian_kernel_f32(ksize, alias_blur)
        .into_iter()
        .map(f64::from)
        .collect();
    let r = (ksize / 2) as isize;
    // Separable: rows, then columns (OpenCV's sepFilter2D), symmetric taps paired.
    let symmetric = |values: &dyn Fn(isize) -> f64| -> f64 {
        let mut acc = round(values(0) * g[r as usize]);
        for j in 1..=r {
            acc = round(acc + round(round(values(-j) + values(j)) * g[(r - j) as usize]));
        }
        acc
    };
    let mut rows = vec![0.0; side * side];
    for y in 0..side {
        for x in 0..side {
            rows[y * side + x] =
                symmetric(&|d| aliased[y * side + reflect_101(x as isize + d, side)]);
        }
    }
    let mut kernel = vec![0.0; side * side];
    for y in 0..side {
        for x in 0..side {
            kernel[y * side + x] =
                symmetric(&|d| rows[reflect_101(y as isize + d, side) * side + x]);
        }
    }
    (kernel, side)
}

/// How `defocus_blur` filters a plane: as a blurred disk where the package's kernel is one,
/// else tap by tap.
pub(crate) enum DefocusFilter {
    Disk(DiskBlur),
    Taps { kernel: Vec<f64>, side: usize },
}

impl DefocusFilter {
    /// The filter for `disk(radius, alias_blur)`, shared with the thread's last call of the
    /// same parameters (a stream at one level builds it once, not per image).
    pub(crate) fn new(radius: f64, alias_blur: f64) -> std::rc::Rc<Self> {
        type Last = Option<((u64, u64), std::rc::Rc<DefocusFilter>)>;
        thread_local! {
            static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new(None) };
        }
        let key = (radius.to_bits(), alias_blur.to_bits());
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some((k, filter)) if *k == key => filter.clone(),
                _ => {
                    let filter = std::rc::Rc::new(match DiskBlur::new(radius, alias_blur) {
                        Some(blur) => DefocusFilter::Disk(blur),
                        None => {
                            let (kernel, side) = disk(radius, alias_blur);
                            DefocusFilter::Taps { kernel, side }
                        }
                    });
                    *last = Some((key, filter.clone()));
                    filter
                }
            }
        })
    }
}

/// A kernel of the package's `disk` taken apart: a disk of whole cells, each of the package's
/// f32 `1 / count`, blurred by the 3x3 anti-aliasing Gaussian `g`, where the package's kernel
/// is exactly that (up to its f32 rounding: where the blur stays inside the package's grid,
/// which it mirrors and cuts). A disk's sum is two reads of a column prefix sum per column of
/// the disk, whatever its radius, where the kernel has ~120 taps at radius 6; the blur's nine
/// taps take three values, which weigh three sums of disk sums. On 8-bit images all these
/// sums are exact integers. The package's kernel is f32 and its `filter2D` sums by DFT: both
/// differ from these sums by float rounding, ~1e-5 levels.
pub(crate) struct DiskBlur {
    /// The disk's largest |dx| (and |dy|).
    reach: usize,
    /// For dx = -reach..=reach, the disk's rows -h..=h in column dx.
    heights: Vec<usize>,
    /// The kernel's values per disk cell at the blur's centre, beside it and at its corners
    /// (`g0 g0 w`, `g0 g1 w`, `g1 g1 w`, w the cell's weight), over 255: levels in, [0, 1]
    /// units out.
    taps: [f64; 3],
    /// How close to a half an f32 sum may round the other way (see [`ToBytes`]).
    bound: f32,
}

impl DiskBlur {
    /// The split of `disk(radius, alias_blur)`, where the package's kernel is a blurred disk
    /// and its sums of levels fit [`MOST_LEVELS`] (radius below 7).
    fn new(radius: f64, alias_blur: f64) -> Option<Self> {
        let (half, ksize) = grid(radius);
        if ksize != 3 {
            return None;
        }
        let reach = (0..=half).filter(|&x| inside(x, 0, radius)).max()?;
        let heights: Vec<usize> = (-reach..=reach)
            .map(|x| {
                (0..=half)
                    .filter(|&y| inside(x, y, radius))
                    .max()
                    .unwrap_or(0) as usize
            })
            .collect();
        let count: usize = heights.iter().map(|h| 2 * h + 1).sum();
        if count * 255 > MOST_LEVELS {
            return None;
        }
        let weight = f64::from(1.0 / count as f32);
        let g: Vec<f64> = gaussian_kernel_f32(ksize, alias_blur)
            .into_iter()
            .map(f64::from)
            .collect();
        let in_disk = |x: isize, y: isize| {
            x.abs() <= reach && y.unsigned_abs() <= heights[(x + reach) as usize]
        };
        // The package's kernel, with f64 arithmetic, against the blurred disk, cell by cell
        // over the grid and one cell beyond.
        let (exact, side) = kernel(radius, alias_blur, |v| v);
        let e = half + 1;
        for y in -e..=e {
            for x in -e..=e {
                let mut blurred = 0.0;
                for i in -1..=1 {
                    for j in -1..=1 {
                        if in_disk(x - j, y - i) {
                            blurred += g[(i + 1) as usize] * g[(j + 1) as usize];
                        }
                    }
                }
                let package = if x.abs() <= half && y.abs() <= half {
                    exact[(y + half) as usize * side + (x + half) as usize]
                } else {
                    0.0
                };
                // Besides f64 rounding (~1e-18): where the blur meets the grid's edge.
                if (package - blurred * weight).abs() > 1e-15 {
                    return None;
                }
            }
        }
        let w = weight / 255.0;
        Some(DiskBlur {
            reach: reach as usize,
            heights,
            taps: [g[1] * g[1] * w, g[1] * g[0] * w, g[0] * g[0] * w],
            bound: F32_BOUND,
        })
    }
}

/// A value the disk's sums add: an 8-bit level or any value (`f64`). Levels add in `u16`,
/// wrapping: a prefix sum wraps, but a difference of two, and a disk's sum (at most
/// [`MOST_LEVELS`]), are exact.
trait Level: Copy + Default {
    /// What sums of a few of them are held in (`u32` for levels).
    type Sum: Copy + Default + std::ops::Add<Output = Self::Sum>;
    fn sum(self) -> Self::Sum;
    fn sum_wide(sum: Self::Sum) -> f64;
    fn plus(self, other: Self) -> Self;
    fn minus(self, other: Self) -> Self;

    /// `out[i] = sum over (high, low) in columns of prefix[high + i] - prefix[low + i]`.
    #[inline(always)]
    fn disk_sums<S: pulp::Simd>(
        _simd: S,
        prefix: &[Self],
        columns: &[(usize, usize)],
        out: &mut [Self],
    ) {
        out.fill(Self::default());
        for &(high, low) in columns {
            let (high, low) = (&prefix[high..][..out.len()], &prefix[low..][..out.len()]);
            for ((d, &a), &b) in out.iter_mut().zip(high).zip(low) {
                *d = d.plus(a.minus(b));
            }
        }
    }
}

/// The largest sum of 8-bit levels a disk may have: `u16`'s.
const MOST_LEVELS: usize = u16::MAX as usize;

impl Level for u16 {
    type Sum = u32;

    #[inline(always)]
    fn sum(self) -> u32 {
        u32::from(self)
    }

    #[inline(always)]
    fn sum_wide(sum: u32) -> f64 {
        f64::from(sum)
    }

    #[inline(always)]
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }

    #[inline(always)]
    fn minus(self, other: Self) -> Self {
        self.wrapping_sub(other)
    }

    /// Blocks of four vectors kept in registers through all the columns (a pass per column
    /// over the row loads and stores the sums each time).
    #[inline(always)]
    fn disk_sums<S: pulp::Simd>(
        simd: S,
        prefix: &[u16],
        columns: &[(usize, usize)],
        out: &mut [u16],
    ) {
        let n = 4 * S::U16_LANES;
        if out.len() < n {
            for (i, d) in out.iter_mut().enumerate() {
                *d = columns.iter().fold(0u16, |sum, &(high, low)| {
                    sum.wrapping_add(prefix[high + i].wrapping_sub(prefix[low + i]))
                });
            }
            return;
        }
        // The last block ends at the row's end, overlapping the one before (its values
        // computed twice, the same).
        let starts = (0..out.len() - n).step_by(n).chain([out.len() - n]);
        for x in starts {
            let mut sums = [simd.splat_u16s(0); 4];
            for &(high, low) in columns {
                let (high, _) = S::as_simd_u16s(&prefix[high + x..][..n]);
                let (low, _) = S::as_simd_u16s(&prefix[low + x..][..n]);
                for ((sum, &a), &b) in sums.iter_mut().zip(high).zip(low) {
                    *sum = simd.add_u16s(*sum, simd.sub_u16s(a, b));
                }
            }
            let (to, _) = S::as_mut_simd_u16s(&mut out[x..x + n]);
            for (to, sum) in to.iter_mut().zip(sums) {
                *to = sum;
            }
        }
    }
}

impl Level for f64 {
    type Sum = f64;

    #[inline(always)]
    fn sum(self) -> f64 {
        self
    }

    #[inline(always)]
    fn sum_wide(sum: f64) -> f64 {
        sum
    }

    #[inline(always)]
    fn plus(self, other: Self) -> Self {
        self + other
    }

    #[inline(always)]
    fn minus(self, other: Self) -> Self {
        self - other
    }
}

thread_local! {
    static PREFIX_LEVELS: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
    static PREFIX_VALUES: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl DiskBlur {
    /// Filters a `width x height` plane in place: 8-bit levels in, values in [0, 1] units out
    /// (reflect-101 at the edges).
    pub(crate) fn filter_plane(&self, plane: &mut [f64], (width, height): (usize, usize)) {
        let (rows, columns) = self.folds(width, height);
        let mut prefix = take_scratch(&PREFIX_VALUES, (rows.len() + 1) * columns.len());
        pulp::Arch::new().dispatch(PrefixSums {
            prefix: &mut prefix,
            width: columns.len(),
            padded_row: |y: usize, out: &mut [f64]| {
                let row = &plane[rows[y] * width..][..width];
                for (o, &x) in out.iter_mut().zip(&columns) {
                    *o = row[x];
                }
            },
        });
        pulp::Arch::new().dispatch(SumDisk {
            blur: self,
            prefix: &prefix,
            shape: (width, height),
            channels: 1,
            emit: ToPlane { plane, width },
        });
        keep_scratch(&PREFIX_VALUES, prefix);
    }

    /// Filters interleaved 8-bit RGB pixels in place, all three channels in each pass along a
    /// row: each byte the one [`DiskBlur::filter_plane`] gives its channel, rounded as
    /// `to_rgb8` rounds.
    pub(crate) fn filter_bytes(&self, pixels: &mut [u8], (width, height): (usize, usize)) {
        let (rows, columns) = self.folds(width, height);
        let pw = 3 * columns.len();
        let pad = self.pad();
        let mut prefix = take_scratch(&PREFIX_LEVELS, (rows.len() + 1) * pw);
        pulp::Arch::new().dispatch(PrefixSums {
            prefix: &mut prefix,
            width: pw,
            padded_row: |y: usize, out: &mut [u16]| {
                let row = &pixels[3 * rows[y] * width..][..3 * width];
                let (left, rest) = out.split_at_mut(3 * pad);
                let (middle, right) = rest.split_at_mut(3 * width);
                for (o, &b) in middle.iter_mut().zip(row) {
                    *o = u16::from(b);
                }
                let edges = left
                    .chunks_exact_mut(3)
                    .zip(&columns)
                    .chain(right.chunks_exact_mut(3).zip(&columns[pad + width..]));
                for (o, &x) in edges {
                    for (o, &b) in o.iter_mut().zip(&row[3 * x..3 * x + 3]) {
                        *o = u16::from(b);
                    }
                }
            },
        });
        pulp::Arch::new().dispatch(SumDisk {
            blur: self,
            prefix: &prefix,
            shape: (width, height),
            channels: 3,
            emit: ToBytes {
                pixels,
                row_len: 3 * width,
                bound: self.bound,
                near: vec![0; 3 * width],
            },
        });
        keep_scratch(&PREFIX_LEVELS, prefix);
    }

    /// The padding each side: the disk's reach and the blur's.
    fn pad(&self) -> usize {
        self.reach + 1
    }

    /// The rows and columns of the plane that the padded copy's rows and columns read.
    fn folds(&self, width: usize, height: usize) -> (Vec<usize>, Vec<usize>) {
        let fold = |len: usize| -> Vec<usize> {
            (0..len + 2 * self.pad())
                .map(|i| reflect_101(i as isize - self.pad() as isize, len))
                .collect()
        };
        (fold(height), fold(width))
    }
}

/// Row y of `prefix`: the sums of the padded image's rows above y (`padded_row(y, row)`
/// writes row y), value by value, `width` values a row.
struct PrefixSums<'a, T, F> {
    prefix: &'a mut [T],
    width: usize,
    padded_row: F,
}

impl<T: Level, F: FnMut(usize, &mut [T])> pulp::WithSimd for PrefixSums<'_, T, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let PrefixSums {
            prefix,
            width,
            mut padded_row,
        } = self;
        prefix[..width].fill(T::default());
        let mut padded = vec![T::default(); width];
        for y in 0..prefix.len() / width - 1 {
            padded_row(y, &mut padded);
            let (done, next) = prefix.split_at_mut((y + 1) * width);
            let above = &done[y * width..];
            for ((p, &a), &v) in next[..width].iter_mut().zip(above).zip(&padded) {
                *p = a.plus(v);
            }
        }
    }
}

/// The disk's sums and the blur's over a padded image of `channels` interleaved planes,
/// compiled for the widest SIMD the CPU has; each output row goes to `emit`. Every value's
/// operations are the same, in the same order, for any `channels`.
struct SumDisk<'a, T, E> {
    blur: &'a DiskBlur,
    /// [`PrefixSums`] of the padded image.
    prefix: &'a [T],
    shape: (usize, usize),
    channels: usize,
    emit: E,
}

impl<T: Level, E: Emit<T>> pulp::WithSimd for SumDisk<'_, T, E> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let SumDisk {
            blur,
            prefix,
            shape: (width, height),
            channels: c,
            mut emit,
        } = self;
        let pad = blur.pad();
        // Widths in values.
        let pw = (width + 2 * pad) * c;
        let ow = width * c;
        // Rows of disk sums (from padded column `pad - 1` on) and of their neighbours' sums
        // along the row (`beside[x] = disk[x] + disk[x + 2]`, channel by channel), three of
        // each: an output row reads the rows above, at and below it.
        let sw = (width + 2) * c;
        let mut disks = vec![T::default(); 3 * sw];
        let mut besides = vec![T::Sum::default(); 3 * ow];
        let mut columns = vec![(0, 0); blur.heights.len()];
        for oy in 0..height + 2 {
            // The disk's sums at padded row `oy + pad - 1`.
            let centre = oy + pad - 1;
            for (column, (&h, at)) in blur.heights.iter().zip(&mut columns).enumerate() {
                let x0 = (pad - 1 + column - blur.reach) * c;
                *at = ((centre + h + 1) * pw + x0, (centre - h) * pw + x0);
            }
            let slot = oy % 3;
            let disk = &mut disks[slot * sw..][..sw];
            T::disk_sums(simd, prefix, &columns, disk);
            let beside = &mut besides[slot * ow..][..ow];
            for ((b, &l), &r) in beside.iter_mut().zip(&*disk).zip(&disk[2 * c..]) {
                *b = l.sum() + r.sum();
            }
            if oy < 2 {
                continue;
            }
            // Output row y = oy - 2: disk rows y (above), y + 1 (at) and y + 2 (below).
            let y = oy - 2;
            let rows = [y, y + 1, y + 2].map(|r| &disks[(r % 3) * sw + c..][..ow]);
            let besides = [y, y + 1, y + 2].map(|r| &besides[(r % 3) * ow..][..ow]);
            emit.row(y, rows, besides, blur.taps);
        }
    }
}

/// Where [`SumDisk`] writes output row `y`, given the disk sums of the rows above, at and
/// below it (`disks`, from the row's first value on) and their neighbours' sums along the row
/// (`besides`).
trait Emit<T: Level> {
    fn row(&mut self, y: usize, disks: [&[T]; 3], besides: [&[T::Sum]; 3], taps: [f64; 3]);
}

/// An output value, in [0, 1] units, from its disk sum and the sums beside it and at its
/// corners.
#[inline(always)]
fn blurred<T: Level>(taps: [f64; 3], middle: T, (sides, corners): (T::Sum, T::Sum)) -> f64 {
    let wide = T::sum_wide;
    taps[0] * wide(middle.sum()) + taps[1] * wide(sides) + taps[2] * wide(corners)
}

/// The sums beside and at the corners of a value, from the disk sums above and below it and
/// the neighbours' sums above, at and below it.
#[inline(always)]
fn neighbours<T: Level>(
    [above, below]: [T; 2],
    [beside_above, beside_at, beside_below]: [T::Sum; 3],
) -> (T::Sum, T::Sum) {
    (
        beside_at + above.sum() + below.sum(),
        beside_above + beside_below,
    )
}

/// The values of a plane.
struct ToPlane<'a> {
    plane: &'a mut [f64],
    width: usize,
}

impl Emit<f64> for ToPlane<'_> {
    #[inline(always)]
    fn row(&mut self, y: usize, disks: [&[f64]; 3], besides: [&[f64]; 3], taps: [f64; 3]) {
        let out = &mut self.plane[y * self.width..][..self.width];
        let [above, at, below] = disks;
        let [b_above, b_at, b_below] = besides;
        let rows = above.iter().zip(at).zip(below);
        let sums = b_above.iter().zip(b_at).zip(b_below);
        for (o, (((&above, &middle), &below), ((&b_above, &b_at), &b_below))) in
            out.iter_mut().zip(rows.zip(sums))
        {
            let around = neighbours::<f64>([above, below], [b_above, b_at, b_below]);
            *o = blurred::<f64>(taps, middle, around);
        }
    }
}

/// The bytes of interleaved pixels: each value summed in f32 (16 lanes, and whole numbers
/// below 2^24 in, so within 4 f32 ulps of 255 of the f64 value in levels), rounded, and where
/// that lies within `bound` of a half, the f64 value rounded instead: the bytes of
/// [`ToPlane`]'s values.
struct ToBytes<'a> {
    pixels: &'a mut [u8],
    row_len: usize,
    bound: f32,
    /// Per value of a row, whether its f32 sum lies within `bound` of a half (1) or not (0).
    near: Vec<u8>,
}

/// [`ToBytes`]'s bound in levels: 2^-12, eight times the f32 sum's error.
const F32_BOUND: f32 = 1.0 / 4096.0;

impl ToBytes<'_> {
    /// The f32 value in levels.
    #[inline(always)]
    fn levels(levels: [f32; 3], middle: u16, (sides, corners): (u32, u32)) -> f32 {
        levels[0] * f32::from(middle) + levels[1] * sides as f32 + levels[2] * corners as f32
    }
}

impl Emit<u16> for ToBytes<'_> {
    #[inline(always)]
    fn row(&mut self, y: usize, disks: [&[u16]; 3], besides: [&[u32]; 3], taps: [f64; 3]) {
        const TWO_23: f32 = 8_388_608.0;
        let out = &mut self.pixels[y * self.row_len..][..self.row_len];
        let [above, at, below] = disks;
        let [b_above, b_at, b_below] = besides;
        let levels = taps.map(|t| (t * 255.0) as f32);
        let edge = 0.5 - self.bound;
        let mut count = 0u32;
        let near = &mut self.near[..out.len()];
        let rows = above.iter().zip(at).zip(below);
        let sums = b_above.iter().zip(b_at).zip(b_below);
        for ((o, n), (((&above, &middle), &below), ((&b_above, &b_at), &b_below))) in
            out.iter_mut().zip(near.iter_mut()).zip(rows.zip(sums))
        {
            let around = neighbours::<u16>([above, below], [b_above, b_at, b_below]);
            let t = Self::levels(levels, middle, around);
            // t + 2^23 holds t's nearest integer in its low mantissa bits.
            let big = t + TWO_23;
            *o = (big.to_bits() & 0x1FF).min(255) as u8;
            *n = u8::from((t - (big - TWO_23)).abs() > edge);
            count += u32::from(*n);
        }
        if count == 0 {
            return;
        }
        for x in set_places(near) {
            let around = neighbours::<u16>([above[x], below[x]], [b_above[x], b_at[x], b_below[x]]);
            out[x] = rounded_unit_byte_lanes(blurred::<u16>(taps, at[x], around));
        }
    }
}

/// `cv2.filter2D(plane, -1, kernel)` of an f64 `width x height` plane with a `side x side`
/// kernel: out(y, x) = sum over the non-zero taps of k(i, j) plane(y + i - c, x + j - c),
/// reflect-101 at the edges. A disk's kernel rows are mostly one value repeated (the blur only
/// touches the rim), so each such run is summed from a row's prefix sums: a subtraction and a
/// multiplication instead of one per tap. The sums' order differs from OpenCV's, which itself
/// sums a kernel this large by DFT: both are float rounding, far below a half level.
pub(crate) fn filter_2d(
    plane: &mut [f64],
    (width, height): (usize, usize),
    kernel: &[f64],
    side: usize,
) {
    let centre = (side / 2) as isize;
    let runs = runs(kernel, side);
    // Padded copy and its rows' prefix sums, so the inner loops read without folding; both
    // in buffers kept per thread (see `with_scratch`: end to end, defocus_blur ran 28% faster
    // without the page faults of fresh ones), and the output goes straight into `plane`,
    // which the copy has freed.
    thread_local! {
        static PADDED: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
        static PREFIX: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let pad = centre as usize;
    let (pw, ph) = (width + 2 * pad, height + 2 * pad);
    let mut padded = take_scratch(&PADDED, pw * ph);
    for y in 0..ph {
        let sy = reflect_101(y as isize - centre, height);
        for x in 0..pw {
            padded[y * pw + x] = plane[sy * width + reflect_101(x as isize - centre, width)];
        }
    }
    let mut prefix = take_scratch(&PREFIX, (pw + 1) * ph);
    for (row, sums) in padded.chunks_exact(pw).zip(prefix.chunks_exact_mut(pw + 1)) {
        let mut total = 0.0;
        sums[0] = 0.0;
        for (sum, &v) in sums[1..].iter_mut().zip(row) {
            total += v;
            *sum = total;
        }
    }
    pulp::Arch::new().dispatch(Correlate {
        padded: &padded,
        prefix: &prefix,
        padded_width: pw,
        runs: &runs,
        out: plane,
        shape: (width, height),
    });
    keep_scratch(&PADDED, padded);
    keep_scratch(&PREFIX, prefix);
}

/// A run of one kernel row: `len` taps of value `k` from column `column` of row `row` (both
/// counted from the kernel's top left); a single tap may be paired with its mirror image
/// across the kernel's centre column (`mirror`), which has the same value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    row: usize,
    column: usize,
    len: usize,
    k: f64,
    mirror: Option<usize>,
}

/// The kernel's non-zero taps as runs of equal values along its rows, single taps paired with
/// their mirror images (a disk's kernel is symmetric, bit for bit).
fn runs(kernel: &[f64], side: usize) -> Vec<Run> {
    let mut out = Vec::new();
    for run in row_runs(kernel, side) {
        let mirror = side - 1 - run.column;
        if run.len == 1 && mirror < run.column {
            let partner = out.iter_mut().find(|r: &&mut Run| {
                r.row == run.row && r.column == mirror && r.len == 1 && r.k == run.k
            });
            if let Some(partner) = partner.filter(|p| p.mirror.is_none()) {
                partner.mirror = Some(run.column);
                continue;
            }
        }
        out.push(run);
    }
    out
}

fn row_runs(kernel: &[f64], side: usize) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (row, values) in kernel.chunks_exact(side).enumerate() {
        for (column, &k) in values.iter().enumerate() {
            match out.last_mut() {
                Some(run) if run.row == row && run.column + run.len == column && run.k == k => {
                    run.len += 1;
                }
                _ if k != 0.0 => out.push(Run {
                    row,
                    column,
                    len: 1,
                    k,
                    mirror: None,
                }),
                _ => {}
            }
        }
    }
    out
}

/// The runs' sums, compiled for the widest SIMD the CPU has, run by run along whole rows.
struct Correlate<'a> {
    padded: &'a [f64],
    prefix: &'a [f64],
    padded_width: usize,
    runs: &'a [Run],
    out: &'a mut [f64],
    shape: (usize, usize),
}

impl pulp::WithSimd for Correlate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (width, height) = self.shape;
        let pw = self.padded_width;
        // Row by row, each output row summing every run while it sits in the L1 cache.
        for y in 0..height {
            let out = &mut self.out[y * width..][..width];
            // The plane's own values were copied out; each sum starts from 0, as before.
            out.fill(0.0);
            for run in self.runs {
                let row = y + run.row;
                // The tap in a local: read through `run` in the loops, it can keep them scalar.
                let k = run.k;
                if let Some(mirror) = run.mirror {
                    let source = &self.padded[row * pw + run.column..][..width];
                    let other = &self.padded[row * pw + mirror..][..width];
                    for ((o, s), t) in out.iter_mut().zip(source).zip(other) {
                        *o += k * (s + t);
                    }
                } else if run.len == 1 {
                    let source = &self.padded[row * pw + run.column..][..width];
                    for (o, s) in out.iter_mut().zip(source) {
                        *o += k * s;
                    }
                } else {
                    let sums = &self.prefix[row * (pw + 1)..][..pw + 1];
                    let after = &sums[run.column + run.len..][..width];
                    let before = &sums[run.column..][..width];
                    for ((o, a), b) in out.iter_mut().zip(after).zip(before) {
                        *o += k * (a - b);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_sums_to_one_and_is_round() {
        // Where the disk touches the grid's edge (radius 8 and up), the mirrored border of the
        // anti-aliasing blur adds a little mass, as in the package.
        for (radius, blur, tolerance) in [(3.0, 0.1, 1e-6), (6.0, 0.5, 1e-6), (8.0, 0.5, 0.1)] {
            let (kernel, side) = disk(radius, blur);
            assert_eq!(side * side, kernel.len());
            let total = kernel.iter().sum::<f64>();
            assert!((total - 1.0).abs() < tolerance, "{radius}: {total}");
            let c = side / 2;
            assert_eq!(kernel[c * side], kernel[c]); // symmetric under transposition
            assert!(kernel[c * side + c] > 0.0);
        }
        assert_eq!(disk(10.0, 0.5).1, 21);
        assert_eq!(disk(3.0, 0.1).1, 17);
    }

    #[test]
    fn reflect_101_does_not_repeat_the_edge() {
        let folded: Vec<usize> = (-3..7).map(|i| reflect_101(i, 4)).collect();
        assert_eq!(folded, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn runs_sum_what_the_taps_sum() {
        let (w, h) = (23, 19);
        let plane: Vec<f64> = (0..w * h)
            .map(|v| f64::from((v * 37 % 101) as u32) / 101.0)
            .collect();
        let (kernel, side) = disk(6.0, 0.5);
        let mut fast = plane.clone();
        filter_2d(&mut fast, (w, h), &kernel, side);
        let c = (side / 2) as isize;
        for y in 0..h {
            for x in 0..w {
                let mut direct = 0.0;
                for (i, k) in kernel.iter().enumerate() {
                    let sy = reflect_101(y as isize + (i / side) as isize - c, h);
                    let sx = reflect_101(x as isize + (i % side) as isize - c, w);
                    direct += k * plane[sy * w + sx];
                }
                assert!((fast[y * w + x] - direct).abs() < 1e-12, "({x}, {y})");
            }
        }
        let taps = kernel.iter().filter(|k| **k != 0.0).count();
        assert!(runs(&kernel, side).len() < taps / 2, "{taps} taps");
    }

    /// Direct correlation of a plane with a `side x side` kernel, reflect-101 at the edges.
    fn correlate(plane: &[f64], (w, h): (usize, usize), kernel: &[f64], side: usize) -> Vec<f64> {
        let c = (side / 2) as isize;
        let mut out = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                for (i, k) in kernel.iter().enumerate() {
                    let sy = reflect_101(y as isize + (i / side) as isize - c, h);
                    let sx = reflect_101(x as isize + (i % side) as isize - c, w);
                    out[y * w + x] += k * plane[sy * w + sx];
                }
            }
        }
        out
    }

    #[test]
    fn the_split_disk_sums_the_packages_taps() {
        // Below radius 7 the blur stays inside the package's grid; from 7 on the package
        // mirrors it at the grid's edge, and the taps are summed as they are.
        for (radius, blur) in [
            (0.0, 0.0),
            (0.6, 0.02),
            (3.0, 0.1),
            (4.0, 0.5),
            (5.3, 0.42),
            (6.0, 0.5),
        ] {
            let split = DiskBlur::new(radius, blur).expect("a disk inside its grid");
            for (w, h) in [(23, 19), (5, 4), (1, 1), (40, 3)] {
                let levels: Vec<u8> = (0..w * h * 3).map(|v| (v * 37 % 251) as u8).collect();
                let mut bytes = levels.clone();
                split.filter_bytes(&mut bytes, (w, h));
                // With every f32 sum "near a half", every byte comes from the f64 value.
                let exact = DiskBlur {
                    heights: split.heights.clone(),
                    bound: 0.5,
                    ..split
                };
                let mut exact_bytes = levels.clone();
                exact.filter_bytes(&mut exact_bytes, (w, h));
                assert_eq!(bytes, exact_bytes, "{radius} {w}x{h}");
                for channel in 0..3 {
                    let plane: Vec<f64> = levels
                        .iter()
                        .skip(channel)
                        .step_by(3)
                        .map(|&b| f64::from(b))
                        .collect();
                    let mut ours = plane.clone();
                    split.filter_plane(&mut ours, (w, h));
                    let (exact, side) = kernel(radius, blur, |v| v);
                    let (package, _) = disk(radius, blur);
                    let exact = correlate(&plane, (w, h), &exact, side);
                    let package = correlate(&plane, (w, h), &package, side);
                    for (i, &v) in ours.iter().enumerate() {
                        // Levels in, units out; f64 rounding from the exact kernel's sums, f32
                        // rounding of the kernel from the package's.
                        assert!((v - exact[i] / 255.0).abs() < 1e-13, "{radius} {w}x{h} {i}");
                        assert!(
                            (v - package[i] / 255.0).abs() < 1e-6,
                            "{radius} {w}x{h} {i}"
                        );
                        assert_eq!(bytes[3 * i + channel], rounded_unit_byte_lanes(v));
                    }
                }
            }
        }
        for radius in [7.0, 7.5, 8.0, 9.2, 10.0] {
            assert!(DiskBlur::new(radius, 0.5).is_none(), "{radius}");
        }
    }

    #[test]
    fn filtering_with_a_delta_is_the_identity() {
        let plane: Vec<f64> = (0..30).map(|v| f64::from(v) / 7.0).collect();
        let mut kernel = vec![0.0; 9];
        kernel[4] = 1.0;
        let mut filtered = plane.clone();
        filter_2d(&mut filtered, (6, 5), &kernel, 3);
        assert_eq!(filtered, plane);
        // Again on the same thread: the kept buffers hold the last call's values, which must
        // not leak into this one's (the prefix sums' first column included).
        let other: Vec<f64> = (0..30).map(|v| f64::from(30 - v) / 3.0).collect();
        let mut filtered = other.clone();
        filter_2d(&mut filtered, (6, 5), &kernel, 3);
        assert_eq!(filtered, other);
    }
}
