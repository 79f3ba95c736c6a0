//! The ImageNet-C corruptions of `imagecorruptions` 1.1.2, one module each, on the building
//! blocks of `crate::imagenet_c`.
//!
//! The severity tables (the numbers in each module's tables at severities 1-5) are taken from
//! `imagecorruptions` (<https://github.com/bethgelab/imagecorruptions>, by Evgenia Rusak and
//! Benjamin Mitzkus, after Dan Hendrycks and Thomas Dietterich's ImageNet-C,
//! <https://github.com/hendrycks/robustness>), licensed under the Apache License, Version 2.0
//! (<http://www.apache.org/licenses/LICENSE-2.0>). The code is ours, written from the
//! package's documented behaviour.

pub(crate) mod brightness;
pub(crate) mod contrast;
pub(crate) mod defocus_blur;
pub(crate) mod elastic_transform;
pub(crate) mod fog;
pub(crate) mod frost;
pub(crate) mod gaussian_blur;
pub(crate) mod gaussian_noise;
pub(crate) mod glass_blur;
pub(crate) mod impulse_noise;
pub(crate) mod jpeg_compression;
pub(crate) mod motion_blur;
pub(crate) mod pixelate;
pub(crate) mod saturate;
pub(crate) mod shot_noise;
pub(crate) mod snow;
pub(crate) mod spatter;
pub(crate) mod speckle_noise;
pub(crate) mod zoom_blur;
