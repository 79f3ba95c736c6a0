//! [`PlanarImage`]: an RGB image as three f32 planes in [0, 1] (a torch CHW tensor's layout),
//! the form the torchvision ports of `ops` work on, with the 8-bit conversions in and out.

use drift_core::{ImageSize, RgbImage8};

/// `round(255 * x)` clamped to 0..=255, rounding half up. Clamped to [0, 255] first, so adding
/// 0.5 and truncating is rounding half up (f32::round is a library call). The truncation is a
/// floor on this positive range, and the byte the low bits of `floor + 2^23`: float arithmetic
/// and selects that vectorise, where `as u8` (a saturating conversion) kept every lane scalar.
/// NaN, which `as u8` makes 0, is 0 here too.
#[inline(always)]
fn to_byte(x: f32) -> u8 {
    let half_up = (x * 255.0).clamp(0.0, 255.0) + 0.5;
    let whole = crate::ops::floor_small(half_up);
    let whole = if whole.is_nan() { 0.0 } else { whole };
    (whole + 8_388_608.0).to_bits() as u8
}

/// `v / 255`, as torchvision's `to_dtype(float32, scale=True)`.
#[inline(always)]
fn to_unit(v: u8) -> f32 {
    f32::from(v) / 255.0
}

// The conversions run compiled for the widest SIMD the CPU has, chosen at run time
// (`pulp::Arch::dispatch`): the loops are `#[inline(always)]` all the way down into
// `with_simd`, so they are compiled for its target features (a closure is not inlined there and
// stays baseline SSE2). The operations are the same in every width: the bytes do not change.

/// RGB bytes into three planes of `v / 255`.
pub(crate) struct Deinterleave<'a> {
    pub(crate) pixels: &'a [u8],
    pub(crate) planes: [&'a mut [f32]; 3],
}

impl pulp::WithSimd for Deinterleave<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let [r, g, b] = self.planes;
        for (((px, r), g), b) in self.pixels.chunks_exact(3).zip(r).zip(g).zip(b) {
            (*r, *g, *b) = (to_unit(px[0]), to_unit(px[1]), to_unit(px[2]));
        }
    }
}

/// Three planes of `n` values into RGB bytes.
pub(crate) struct Interleave<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) n: usize,
    pub(crate) pixels: &'a mut [u8],
}

impl pulp::WithSimd for Interleave<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (r, rest) = self.data.split_at(self.n);
        let (g, b) = rest.split_at(self.n);
        for (((px, r), g), b) in self.pixels.chunks_exact_mut(3).zip(r).zip(g).zip(b) {
            px.copy_from_slice(&[to_byte(*r), to_byte(*g), to_byte(*b)]);
        }
    }
}

/// An RGB image as three f32 planes in [0, 1] (channel-major, like a torch CHW tensor).
#[derive(Debug, Clone)]
pub struct PlanarImage {
    size: ImageSize,
    data: Vec<f32>,
    /// Whether every value is still the `k / 255` of a byte (made by `from_rgb8`, untouched
    /// since): the ImageNet-C corruptions then read the exact 8-bit values the package sees.
    bytes: bool,
}

/// Images are equal when their sizes and values are (however they were made).
impl PartialEq for PlanarImage {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.data == other.data
    }
}

impl PlanarImage {
    /// `x / 255` per byte, as torchvision's `to_dtype(float32, scale=True)`.
    pub fn from_rgb8(image: &RgbImage8) -> Self {
        let size = image.size();
        let n = size.pixel_count();
        let mut data = vec![0.0f32; 3 * n];
        let (r, rest) = data.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        pulp::Arch::new().dispatch(Deinterleave {
            pixels: image.pixels(),
            planes: [r, g, b],
        });
        Self {
            size,
            data,
            bytes: true,
        }
    }

    /// Planes from raw CHW data; `None` if the length is not `3 * width * height`.
    pub fn from_planes(size: ImageSize, data: Vec<f32>) -> Option<Self> {
        (data.len() == 3 * size.pixel_count()).then_some(Self {
            size,
            data,
            bytes: false,
        })
    }

    /// `round(255 * x)` clamped to 0..=255, interleaved.
    pub fn to_rgb8(&self) -> RgbImage8 {
        let n = self.size.pixel_count();
        let mut pixels = vec![0u8; 3 * n];
        pulp::Arch::new().dispatch(Interleave {
            data: &self.data,
            n,
            pixels: &mut pixels,
        });
        RgbImage8::from_pixels(self.size, pixels).expect("3 bytes per pixel")
    }

    /// Width and height.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// All three planes, R then G then B.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Whether every value is still the `k / 255` of a byte, as `from_rgb8` made it.
    pub(crate) fn holds_bytes(&self) -> bool {
        self.bytes
    }

    pub(crate) fn data_mut(&mut self) -> &mut [f32] {
        self.bytes = false;
        &mut self.data
    }

    /// The three planes, mutably.
    pub(crate) fn planes_mut(&mut self) -> [&mut [f32]; 3] {
        self.bytes = false;
        let n = self.size.pixel_count();
        let (r, rest) = self.data.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        [r, g, b]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_rounding_is_to_nearest() {
        let size = ImageSize::new(16, 16).unwrap();
        let bytes: Vec<u8> = (0..=255).flat_map(|v| [v, 255 - v, v / 2]).collect();
        let image = RgbImage8::from_pixels(size, bytes).unwrap();
        assert_eq!(PlanarImage::from_rgb8(&image).to_rgb8(), image);
        let mut planar = PlanarImage::from_planes(size, vec![0.0; 768]).unwrap();
        planar.data_mut()[..5].copy_from_slice(&[
            -0.5,
            0.4 / 255.0,
            0.6 / 255.0,
            1.7,
            200.4 / 255.0,
        ]);
        assert_eq!(
            &planar.to_rgb8().pixels()[..13],
            &[0, 0, 0, 0, 0, 0, 1, 0, 0, 255, 0, 0, 200]
        );
    }
}
