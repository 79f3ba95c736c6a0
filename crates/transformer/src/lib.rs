//! Transformer stage: synthetic drift as image transforms.
//!
//! This crate is a shell until the transformer issue lands: it holds the [`TransformChain`] type
//! the pipeline already runs on its transformer threads. An empty chain (no drift) returns the
//! image unchanged. The transforms of SPEC (rotate, brightness, contrast, saturation, hue,
//! gaussian_blur, gaussian_noise, default) come with that issue, each as a pure function plus a
//! parameter draw from the per-sample generator.
//!
//! ```
//! use drift_core::{ImageSize, RgbImage8};
//! use drift_transformer::TransformChain;
//! let image = RgbImage8::black(ImageSize::new(2, 2).unwrap());
//! assert_eq!(TransformChain::identity().apply(image.clone()), image);
//! ```

use drift_core::RgbImage8;

/// An ordered list of transforms, applied to every sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransformChain {
    _private: (),
}

impl TransformChain {
    /// The chain that changes nothing.
    pub fn identity() -> Self {
        Self::default()
    }

    /// True when the chain changes nothing, so callers can skip the float round trip.
    pub fn is_identity(&self) -> bool {
        true
    }

    /// Applies the chain to one image.
    pub fn apply(&self, image: RgbImage8) -> RgbImage8 {
        image
    }
}
