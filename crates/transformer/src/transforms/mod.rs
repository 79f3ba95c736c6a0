//! The registered transforms: one module each, one line each in the list below, in SPEC's
//! order (which is the order of the drift log's columns).

use crate::registry::TransformKind;

macro_rules! register {
    ($($module:ident => $transform:ident,)*) => {
        $(mod $module;)*
        /// Every registered transform, in order.
        pub(crate) static ALL: &[TransformKind] = &[$(TransformKind(&$module::$transform),)*];
    };
}

register! {
    rotate => Rotate,
    brightness => Brightness,
    contrast => Contrast,
    saturation => Saturation,
    hue => Hue,
    gaussian_blur => GaussianBlur,
    gaussian_noise => GaussianNoise,
    default => Default,
    pixelate => Pixelate,
    jpeg_compression => JpegCompression,
}

/// A factor ~ U[max(0, 1 - range L), 1 + range L] (1 when the range is empty).
fn factor(range: f64, level: f64, rng: &mut dyn rand::Rng) -> f64 {
    use rand::RngExt;
    let low = (1.0 - range * level).max(0.0);
    let high = 1.0 + range * level;
    if high > low {
        rng.random_range(low..=high)
    } else {
        1.0
    }
}
