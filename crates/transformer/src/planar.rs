//! [`PlanarImage`]: an RGB image as three f32 planes in [0, 1] (a torch CHW tensor's layout),
//! the form the torchvision ports of `ops` work on, with the 8-bit conversions in and out.

use drift_core::{ImageSize, RgbImage8};

/// `round(255 * x)` clamped to 0..=255, rounding half up, in float arithmetic and selects that
/// vectorise (`f32::round` is a library call, and a saturating `as` conversion stays scalar
/// lane by lane). `max` then `min` clamp to [0, 255] and turn NaN into 0; adding 2^23 to
/// `y = clamped + 0.5` rounds it to an integer (to nearest), whose low bits are then the
/// integer itself; one less where that rounded up, so the floor of `y`.
#[inline(always)]
#[expect(clippy::manual_clamp, reason = "clamp keeps NaN; max turns it into 0")]
pub(crate) fn to_byte(x: f32) -> u8 {
    const SHIFT: f32 = 8_388_608.0;
    let y = (x * 255.0).max(0.0).min(255.0) + 0.5;
    let rounded = y + SHIFT;
    let up = rounded - SHIFT > y;
    (rounded.to_bits() as u8).wrapping_sub(u8::from(up))
}

/// `v / 255`, as torchvision's `to_dtype(float32, scale=True)`: the f32 division's bits
/// without the division, which costs as much as the rest of a transform in SIMD. `v / 256` is
/// exact, and `v / 65280` (the rest of `v / 255`) rounded in f32 is off by less than 2^-40, too
/// little to move their sum across the rounding boundary of an f32 for any byte (checked for
/// every one below).
#[inline(always)]
pub(crate) fn to_unit(v: u8) -> f32 {
    const REST: f32 = (1.0 / 255.0 - 1.0 / 256.0) as f32;
    f32::from(v) * (1.0 / 256.0) + f32::from(v) * REST
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

/// Three planes into RGB bytes, each value rounded by `to_byte`.
pub(crate) struct Interleave<'a> {
    pub(crate) planes: [&'a [f32]; 3],
    pub(crate) pixels: &'a mut [u8],
}

impl pulp::WithSimd for Interleave<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let [r, g, b] = self.planes;
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
        let (r, rest) = self.data.split_at(n);
        let (g, b) = rest.split_at(n);
        pulp::Arch::new().dispatch(Interleave {
            planes: [r, g, b],
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

    /// Marks the values as (still) the `k / 255` of bytes, or not: for an operation that moves
    /// values without computing them.
    pub(crate) fn set_holds_bytes(&mut self, bytes: bool) {
        self.bytes = bytes;
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
    fn to_unit_is_the_f32_division() {
        for v in 0..=255u8 {
            assert_eq!(
                to_unit(v).to_bits(),
                (f32::from(v) / 255.0).to_bits(),
                "{v}"
            );
        }
    }

    #[test]
    fn to_byte_rounds_half_up_and_clamps() {
        let reference = |x: f32| {
            if x.is_nan() {
                0
            } else {
                ((x * 255.0).clamp(0.0, 255.0) + 0.5).floor() as u8
            }
        };
        let mut values = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -0.0,
            1e30,
        ];
        for k in -300..600 {
            let tie = (k as f32 + 0.5) / 255.0;
            values.extend([
                k as f32 / 255.0,
                tie,
                f32::from_bits(tie.to_bits() + 1),
                f32::from_bits(tie.to_bits().wrapping_sub(1)),
            ]);
        }
        // Every 997th f32 from 0 to 1.01, and its negative.
        let mut bits = 0u32;
        while f32::from_bits(bits) < 1.01 {
            values.extend([f32::from_bits(bits), -f32::from_bits(bits)]);
            bits += 997;
        }
        for x in values {
            assert_eq!(to_byte(x), reference(x), "{x:e}");
        }
    }

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
