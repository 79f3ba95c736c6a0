use drift_core::{ImageSize, RgbImage8};

/// An RGB image as three f32 planes in [0, 1] (channel-major, like a torch CHW tensor).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanarImage {
    size: ImageSize,
    data: Vec<f32>,
}

impl PlanarImage {
    /// `x / 255` per byte, as torchvision's `to_dtype(float32, scale=True)`.
    pub fn from_rgb8(image: &RgbImage8) -> Self {
        let size = image.size();
        let n = size.pixel_count();
        let mut data = vec![0.0f32; 3 * n];
        for (i, px) in image.pixels().chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * n + i] = f32::from(px[c]) / 255.0;
            }
        }
        Self { size, data }
    }

    /// Planes from raw CHW data; `None` if the length is not `3 * width * height`.
    pub fn from_planes(size: ImageSize, data: Vec<f32>) -> Option<Self> {
        (data.len() == 3 * size.pixel_count()).then_some(Self { size, data })
    }

    /// `round(255 * x)` clamped to 0..=255, interleaved.
    pub fn to_rgb8(&self) -> RgbImage8 {
        let n = self.size.pixel_count();
        let mut pixels = vec![0u8; 3 * n];
        for i in 0..n {
            for c in 0..3 {
                pixels[3 * i + c] = (self.data[c * n + i] * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
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

    pub(crate) fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The three planes, mutably.
    pub(crate) fn planes_mut(&mut self) -> [&mut [f32]; 3] {
        let n = self.size.pixel_count();
        let (r, rest) = self.data.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        [r, g, b]
    }
}
