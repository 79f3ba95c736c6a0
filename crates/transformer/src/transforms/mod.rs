//! The registered transforms: one module each, one line each in the list below. SPEC's
//! torchvision transforms first, in SPEC's order, then the ImageNet-C corruptions in the order
//! of `imagecorruptions.get_corruption_names('all')`.

use crate::registry::TransformKind;

mod brightness;
mod contrast;
mod default;
mod gaussian_blur;
mod gaussian_noise;
mod hue;
mod imagenet_c;
mod rotate;
mod saturation;

/// Every registered transform, in order.
pub(crate) static ALL: &[TransformKind] = &[
    TransformKind(&rotate::Rotate),
    TransformKind(&brightness::Brightness),
    TransformKind(&contrast::Contrast),
    TransformKind(&saturation::Saturation),
    TransformKind(&hue::Hue),
    TransformKind(&gaussian_blur::GaussianBlur),
    TransformKind(&gaussian_noise::GaussianNoise),
    TransformKind(&default::Default),
    TransformKind(&imagenet_c::gaussian_noise::GaussianNoise),
    TransformKind(&imagenet_c::shot_noise::ShotNoise),
    TransformKind(&imagenet_c::impulse_noise::ImpulseNoise),
    TransformKind(&imagenet_c::defocus_blur::DefocusBlur),
    TransformKind(&imagenet_c::glass_blur::GlassBlur),
    TransformKind(&imagenet_c::motion_blur::MotionBlur),
    TransformKind(&imagenet_c::zoom_blur::ZoomBlur),
    TransformKind(&imagenet_c::snow::Snow),
    TransformKind(&imagenet_c::frost::Frost),
    TransformKind(&imagenet_c::fog::Fog),
    TransformKind(&imagenet_c::brightness::Brightness),
    TransformKind(&imagenet_c::contrast::Contrast),
    TransformKind(&imagenet_c::elastic_transform::ElasticTransform),
    TransformKind(&imagenet_c::pixelate::Pixelate),
    TransformKind(&imagenet_c::jpeg_compression::JpegCompression),
    TransformKind(&imagenet_c::speckle_noise::SpeckleNoise),
    TransformKind(&imagenet_c::gaussian_blur::GaussianBlur),
    TransformKind(&imagenet_c::spatter::Spatter),
    TransformKind(&imagenet_c::saturate::Saturate),
];

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
