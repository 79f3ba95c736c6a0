//! Transformer stage: synthetic drift as image transforms, faithful to torchvision.
//!
//! A drift is a [`TransformChain`]: an ordered list of [`TransformSpec`]s, each a
//! [`TransformKind`] with a `drift_level` in [0, 1]. For every sample, each transform first draws
//! its [`Params`] from the level with the sample's own generator ([`TransformKind::draw`]), then
//! applies them with a pure function ([`Params::apply`]) on a float image ([`PlanarImage`]). For
//! fixed parameters the functions follow `torchvision.transforms.v2.functional` on float32
//! tensors, operation by operation. Level 0 is the identity for every transform.
//!
//! A [`Drift`] is a chain and the [`DriftShape`] it arrives in over a segment (abrupt, gradual,
//! incremental, recurring): per sample it decides whether and how strongly the chain applies,
//! and reports a [`DriftOutcome`], the ground truth of `drift_log.parquet`.
//!
//! ```
//! use drift_core::{ImageSize, RgbImage8};
//! use drift_transformer::TransformChain;
//! let chain: TransformChain = "rotate=0.5,gaussian_noise=0.2".parse().unwrap();
//! let image = RgbImage8::black(ImageSize::new(8, 8).unwrap());
//! let (drifted, applied) = chain.apply(image.clone(), 42, 0);
//! assert_eq!(applied.len(), 2);
//! assert_ne!(drifted, image); // the noise has a mean of 0.1
//! ```

mod ops;
mod planar;
mod shape;

pub use ops::{brightness, contrast, gaussian_blur, gaussian_noise, hue, rotate, saturation};
pub use planar::PlanarImage;
pub use shape::{Drift, DriftOutcome, DriftShape, LOG_COLUMNS, Ramp, SegmentPosition};

use std::fmt;
use std::str::FromStr;

use drift_core::{Purpose, RgbImage8, sample_rng};
use rand::{RngExt, SeedableRng};

/// The transforms of SPEC, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformKind {
    /// Angle ~ U[-90L, 90L] degrees about the centre, nearest neighbour, black fill.
    Rotate,
    /// Factor ~ U[max(0, 1-3L), 1+3L].
    Brightness,
    /// Factor ~ U[max(0, 1-3L), 1+3L], blended with the image's mean grey.
    Contrast,
    /// Factor ~ U[max(0, 1-15L), 1+15L], blended with each pixel's grey.
    Saturation,
    /// Shift ~ U[-0.5L, 0.5L] turns of the hue circle.
    Hue,
    /// 5x5 Gaussian, sigma = 3L, reflect padding.
    GaussianBlur,
    /// Additive N(0.1, (0.5L)^2) per pixel and channel, clamped.
    GaussianNoise,
    /// One knob: blur at L for L <= 0.5, noise at L - 0.4 above.
    Default,
}

impl TransformKind {
    /// Every kind, in SPEC's order.
    pub const ALL: [TransformKind; 8] = [
        Self::Rotate,
        Self::Brightness,
        Self::Contrast,
        Self::Saturation,
        Self::Hue,
        Self::GaussianBlur,
        Self::GaussianNoise,
        Self::Default,
    ];

    /// The name used on the command line, in scenarios and in `drift.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rotate => "rotate",
            Self::Brightness => "brightness",
            Self::Contrast => "contrast",
            Self::Saturation => "saturation",
            Self::Hue => "hue",
            Self::GaussianBlur => "gaussian_blur",
            Self::GaussianNoise => "gaussian_noise",
            Self::Default => "default",
        }
    }

    /// Draws this transform's parameters at `drift_level` (already checked to be in [0, 1]).
    pub fn draw(self, drift_level: f64, rng: &mut impl rand::Rng) -> Params {
        let l = drift_level;
        let factor = |range: f64, rng: &mut dyn rand::Rng| {
            let low = (1.0 - range * l).max(0.0);
            let high = 1.0 + range * l;
            if high > low {
                rng.random_range(low..=high)
            } else {
                1.0
            }
        };
        match self {
            _ if l == 0.0 => Params::Identity,
            Self::Rotate => Params::Rotate {
                angle_degrees: rng.random_range(-90.0 * l..=90.0 * l),
            },
            Self::Brightness => Params::Brightness {
                factor: factor(3.0, rng),
            },
            Self::Contrast => Params::Contrast {
                factor: factor(3.0, rng),
            },
            Self::Saturation => Params::Saturation {
                factor: factor(15.0, rng),
            },
            Self::Hue => Params::Hue {
                shift: rng.random_range(-0.5 * l..=0.5 * l),
            },
            Self::GaussianBlur => Params::GaussianBlur { sigma: 3.0 * l },
            Self::GaussianNoise => Params::GaussianNoise {
                mean: 0.1,
                sigma: 0.5 * l,
            },
            Self::Default if l <= 0.5 => Params::GaussianBlur { sigma: 3.0 * l },
            Self::Default => Params::GaussianNoise {
                mean: 0.1,
                sigma: 0.5 * (l - 0.4),
            },
        }
    }
}

impl fmt::Display for TransformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a transform was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    /// An unknown transform name.
    #[error("unknown transform '{name}': valid names are {}", valid_names())]
    UnknownName {
        /// What was given.
        name: String,
    },
    /// Not `NAME=LEVEL`.
    #[error("'{text}' is not a transform: expected NAME=LEVEL, e.g. gaussian_blur=0.3")]
    Syntax {
        /// What was given.
        text: String,
    },
    /// A level that is not a number in [0, 1].
    #[error("drift_level of {name} must be a number in [0, 1], got '{level}'")]
    Level {
        /// The transform.
        name: String,
        /// What was given.
        level: String,
    },
    /// A chain with no transform where one is required.
    #[error("a drift needs at least one transform")]
    Empty,
    /// A drift shape that does not parse or is out of range.
    #[error("{reason}")]
    Shape {
        /// What is wrong.
        reason: String,
    },
    /// A transform given twice in one list.
    #[error(
        "transform {name} appears twice in one drift (the drift log has one column per transform)"
    )]
    Repeated {
        /// The transform.
        name: String,
    },
}

fn valid_names() -> String {
    TransformKind::ALL.map(TransformKind::name).join(", ")
}

impl FromStr for TransformKind {
    type Err = TransformError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| TransformError::UnknownName {
                name: name.to_owned(),
            })
    }
}

/// A transform and its strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformSpec {
    kind: TransformKind,
    drift_level: f64,
}

impl TransformSpec {
    /// A transform at `drift_level`, which must be in [0, 1].
    pub fn new(kind: TransformKind, drift_level: f64) -> Result<Self, TransformError> {
        if !(0.0..=1.0).contains(&drift_level) {
            return Err(TransformError::Level {
                name: kind.name().to_owned(),
                level: drift_level.to_string(),
            });
        }
        Ok(Self { kind, drift_level })
    }

    /// Which transform.
    pub fn kind(&self) -> TransformKind {
        self.kind
    }

    /// Its level in [0, 1].
    pub fn drift_level(&self) -> f64 {
        self.drift_level
    }
}

impl FromStr for TransformSpec {
    type Err = TransformError;

    /// Parses `NAME=LEVEL`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, level) = text.split_once('=').ok_or_else(|| TransformError::Syntax {
            text: text.to_owned(),
        })?;
        let kind: TransformKind = name.trim().parse()?;
        let drift_level = level
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|l| l.is_finite())
            .ok_or_else(|| TransformError::Level {
                name: kind.name().to_owned(),
                level: level.to_owned(),
            })?;
        Self::new(kind, drift_level)
    }
}

impl fmt::Display for TransformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind, self.drift_level)
    }
}

/// Parameters drawn for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Params {
    /// Nothing to do (level 0).
    Identity,
    /// Counter-clockwise angle in degrees.
    Rotate {
        /// Degrees.
        angle_degrees: f64,
    },
    /// Multiplicative factor.
    Brightness {
        /// Factor.
        factor: f64,
    },
    /// Blend factor with the mean grey.
    Contrast {
        /// Factor.
        factor: f64,
    },
    /// Blend factor with the pixel's grey.
    Saturation {
        /// Factor.
        factor: f64,
    },
    /// Hue shift in turns.
    Hue {
        /// Turns, in [-0.5, 0.5].
        shift: f64,
    },
    /// Gaussian blur.
    GaussianBlur {
        /// Standard deviation in pixels.
        sigma: f64,
    },
    /// Additive Gaussian noise.
    GaussianNoise {
        /// Mean of the noise.
        mean: f64,
        /// Standard deviation of the noise.
        sigma: f64,
    },
}

impl Params {
    /// Applies the parameters; `noise_rng` feeds per-pixel noise and is untouched otherwise.
    pub fn apply(&self, image: &mut PlanarImage, noise_rng: &mut impl rand::Rng) {
        match *self {
            Params::Identity => {}
            Params::Rotate { angle_degrees } => rotate(image, angle_degrees),
            Params::Brightness { factor } => brightness(image, factor as f32),
            Params::Contrast { factor } => contrast(image, factor as f32),
            Params::Saturation { factor } => saturation(image, factor as f32),
            Params::Hue { shift } => hue(image, shift as f32),
            Params::GaussianBlur { sigma } => gaussian_blur(image, sigma as f32),
            Params::GaussianNoise { mean, sigma } => {
                gaussian_noise(image, mean as f32, sigma as f32, noise_rng)
            }
        }
    }
}

/// What one transform of a chain did to one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppliedTransform {
    /// The transform and level.
    pub spec: TransformSpec,
    /// The parameters drawn for this sample.
    pub params: Params,
}

/// An ordered list of transforms, applied to every sample with per-sample parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransformChain {
    specs: Vec<TransformSpec>,
}

impl TransformChain {
    /// The chain that changes nothing.
    pub fn identity() -> Self {
        Self::default()
    }

    /// A chain of `specs`, applied in order.
    pub fn new(specs: Vec<TransformSpec>) -> Self {
        Self { specs }
    }

    /// The transforms, in order.
    pub fn specs(&self) -> &[TransformSpec] {
        &self.specs
    }

    /// True when the chain changes nothing.
    pub fn is_identity(&self) -> bool {
        self.specs.iter().all(|s| s.drift_level == 0.0)
    }

    /// Applies the chain to sample `sample_id`: transform `i` draws its parameters from
    /// (seed, sample_id, TransformParams(i)) and its noise from (seed, sample_id,
    /// TransformNoise(i)), so the result does not depend on threads or batches. An identity
    /// chain hands the image back untouched, without a float round trip or a copy.
    pub fn apply(
        &self,
        image: RgbImage8,
        seed: u64,
        sample_id: u64,
    ) -> (RgbImage8, Vec<AppliedTransform>) {
        if self.is_identity() {
            return (image, Vec::new());
        }
        let mut planar = PlanarImage::from_rgb8(&image);
        let mut applied = Vec::with_capacity(self.specs.len());
        for (index, spec) in self.specs.iter().enumerate() {
            let index = index as u32;
            let mut params_rng = sample_rng(seed, sample_id, Purpose::TransformParams(index));
            let params = spec.kind.draw(spec.drift_level, &mut params_rng);
            // Per-pixel noise needs about a megabyte of random bits per image. xoshiro256++
            // (statistically excellent, not cryptographic, which noise does not need), seeded
            // from the sample's own ChaCha20 noise stream, makes them several times faster than
            // ChaCha8 did.
            let noise_seed: [u8; 32] =
                sample_rng(seed, sample_id, Purpose::TransformNoise(index)).random();
            let mut noise_rng = rand::rngs::Xoshiro256PlusPlus::from_seed(noise_seed);
            params.apply(&mut planar, &mut noise_rng);
            applied.push(AppliedTransform {
                spec: *spec,
                params,
            });
        }
        (planar.to_rgb8(), applied)
    }
}

impl FromStr for TransformChain {
    type Err = TransformError;

    /// Parses `NAME=LEVEL[,NAME=LEVEL...]`; the empty string is the identity.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let specs = text
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(specs))
    }
}

impl fmt::Display for TransformChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.specs.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_specs() {
        let spec: TransformSpec = "gaussian_blur=0.3".parse().unwrap();
        assert_eq!(
            (spec.kind(), spec.drift_level()),
            (TransformKind::GaussianBlur, 0.3)
        );
        let err = "blurr=0.3"
            .parse::<TransformSpec>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown transform 'blurr'") && err.contains("gaussian_blur"),
            "{err}"
        );
        for bad in [
            "rotate=1.5",
            "rotate=-0.1",
            "rotate=x",
            "rotate=NaN",
            "rotate",
        ] {
            assert!(bad.parse::<TransformSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn draws_stay_in_spec_ranges() {
        let mut rng = sample_rng(1, 2, Purpose::TransformParams(0));
        for _ in 0..1000 {
            match TransformKind::Rotate.draw(0.5, &mut rng) {
                Params::Rotate { angle_degrees } => assert!(angle_degrees.abs() <= 45.0),
                other => panic!("{other:?}"),
            }
            match TransformKind::Saturation.draw(0.1, &mut rng) {
                Params::Saturation { factor } => assert!((0.0..=2.5).contains(&factor)),
                other => panic!("{other:?}"),
            }
            match TransformKind::Brightness.draw(0.2, &mut rng) {
                Params::Brightness { factor } => assert!((0.4..=1.6).contains(&factor)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            TransformKind::Default.draw(0.5, &mut rng),
            Params::GaussianBlur { sigma: 1.5 }
        );
        let Params::GaussianNoise { sigma, mean } = TransformKind::Default.draw(0.9, &mut rng)
        else {
            panic!("default above 0.5 is noise");
        };
        assert!((sigma - 0.25).abs() < 1e-12 && mean == 0.1);
        assert_eq!(
            TransformKind::GaussianNoise.draw(0.0, &mut rng),
            Params::Identity
        );
    }

    #[test]
    fn chain_is_deterministic_per_sample_and_differs_between_samples() {
        let size = drift_core::ImageSize::new(16, 12).unwrap();
        let pixels: Vec<u8> = (0..16 * 12 * 3).map(|i| (i * 13 % 256) as u8).collect();
        let image = RgbImage8::from_pixels(size, pixels).unwrap();
        let chain: TransformChain = "rotate=0.8,hue=0.5,gaussian_noise=0.3".parse().unwrap();
        let (a, pa) = chain.apply(image.clone(), 7, 3);
        let (b, pb) = chain.apply(image.clone(), 7, 3);
        let (c, pc) = chain.apply(image.clone(), 7, 4);
        assert_eq!((a.clone(), pa.clone()), (b, pb));
        assert_ne!(a, c);
        assert_ne!(pa, pc);
        assert!("".parse::<TransformChain>().unwrap().is_identity());
    }
}
