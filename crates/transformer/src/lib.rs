//! Transformer stage: synthetic drift as image transforms, faithful to torchvision.
//!
//! A drift is a [`TransformChain`]: an ordered list of [`TransformSpec`]s, each a registered
//! [`TransformKind`] with a `drift_level` in [0, 1]. For every sample, each transform first draws
//! its [`Params`] from the level with the sample's own generator ([`TransformKind::draw`]), then
//! applies them with a pure function ([`TransformKind::apply`]) on a float image
//! ([`PlanarImage`]). For fixed parameters the torchvision transforms follow
//! `torchvision.transforms.v2.functional` on float32 tensors, operation by operation, and the
//! ImageNet-C corruptions follow the `imagecorruptions` package. Level 0 is the identity for
//! every transform.
//!
//! Each transform is one module of `transforms/` implementing [`Transform`] (name, description,
//! logged parameter columns, draw, apply) and one line of the registry list in
//! `transforms/mod.rs`; names, help text, the drift log's keys and the README's table
//! ([`markdown_table`]) follow from the registry.
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

pub mod imagenet_c;
mod ops;
mod planar;
mod registry;
mod rgb8;
mod shape;
mod transforms;

pub use imagenet_c::{Corruption, Draws, RngDraws};
pub use ops::{brightness, contrast, gaussian_blur, gaussian_noise, hue, rotate, saturation};
pub use planar::PlanarImage;
pub use registry::{
    Family, MAX_PARAMS, NoiseRng, ParamColumn, Params, Transform, TransformKind, catalog_table,
    markdown_table, severity_value,
};
pub use shape::{Drift, DriftOutcome, DriftShape, Ramp, SegmentPosition};

use std::fmt;
use std::str::FromStr;

use drift_core::{Purpose, RgbImage8, sample_rng};
use rand::{RngExt, SeedableRng};

/// Why a transform was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    /// An unknown transform name.
    #[error(
        "unknown transform '{name}'{}: valid names are {}",
        suggestion.map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default(),
        valid_names()
    )]
    UnknownName {
        /// What was given.
        name: String,
        /// The registered name closest to it, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A transform name where a name alone is expected, given with a level.
    #[error("'{text}': expected a transform name alone, without a level (e.g. {name})")]
    UnexpectedLevel {
        /// What was given.
        text: String,
        /// The transform it names.
        name: &'static str,
    },
    /// A transform name without its level.
    #[error("'{name}' needs a level: expected NAME=LEVEL with LEVEL in [0, 1], e.g. {name}=0.3")]
    MissingLevel {
        /// The transform.
        name: &'static str,
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
    /// A severity (`NAME@k`) that is not a number in [0, 5].
    #[error(
        "severity of {name} must be a number in [0, 5] (level = severity / 5), got '{severity}'"
    )]
    Severity {
        /// The transform.
        name: String,
        /// What was given.
        severity: String,
    },
    /// A severity (`NAME@k`) given for a transform that has none.
    #[error(
        "'{text}': only ImageNet-C corruptions take a severity (NAME@k); give {name} a level, e.g. {name}=0.3"
    )]
    NoSeverity {
        /// What was given.
        text: String,
        /// The transform.
        name: &'static str,
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

/// The registered name (or bare ImageNet-C alias) within two edits of `name` (case aside), the
/// closest first.
fn closest_name(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    TransformKind::all()
        .iter()
        .flat_map(|kind| std::iter::once(kind.name()).chain(kind.alias()))
        .map(|candidate| (strsim::levenshtein(&name, candidate), candidate))
        .filter(|&(distance, _)| distance <= 2)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

fn valid_names() -> String {
    let names: Vec<&str> = TransformKind::all().iter().map(|k| k.name()).collect();
    names.join(", ")
}

impl FromStr for TransformKind {
    type Err = TransformError;

    /// A registered name, in any case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if let Some(kind) = Self::named(name.trim()) {
            return Ok(kind);
        }
        if let Some((before, _)) = name.split_once('=')
            && let Some(kind) = Self::named(before.trim())
        {
            return Err(TransformError::UnexpectedLevel {
                text: name.to_owned(),
                name: kind.name(),
            });
        }
        Err(TransformError::UnknownName {
            name: name.to_owned(),
            suggestion: closest_name(name),
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

    /// Parses `NAME=LEVEL`, or `NAME@k` for an ImageNet-C corruption at severity k (level k/5).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !text.contains('=')
            && let Some((name, severity)) = text.split_once('@')
        {
            let kind: TransformKind = name.trim().parse()?;
            if kind.family() != Family::ImageNetC {
                return Err(TransformError::NoSeverity {
                    text: text.to_owned(),
                    name: kind.name(),
                });
            }
            let level = severity
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=5.0).contains(s))
                .ok_or_else(|| TransformError::Severity {
                    name: kind.name().to_owned(),
                    severity: severity.to_owned(),
                })?;
            return Self::new(kind, level / 5.0);
        }
        let (name, level) =
            text.split_once('=')
                .ok_or_else(|| match TransformKind::named(text.trim()) {
                    Some(kind) => TransformError::MissingLevel { name: kind.name() },
                    None => TransformError::Syntax {
                        text: text.to_owned(),
                    },
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
    ///
    /// The image stays 8-bit while it can: through transforms whose byte path is exact
    /// (`rotate`), and through the last transform, whose byte path rounds once as the final
    /// conversion would. Otherwise it becomes float planes until the end. Either way the bytes
    /// are those of the planar path alone.
    pub fn apply(
        &self,
        image: RgbImage8,
        seed: u64,
        sample_id: u64,
    ) -> (RgbImage8, Vec<AppliedTransform>) {
        if self.is_identity() {
            return (image, Vec::new());
        }
        let last = self.specs.iter().rposition(|s| s.drift_level != 0.0);
        let image_size = image.size();
        let mut working = Working::Bytes(image);
        let mut applied = Vec::with_capacity(self.specs.len());
        for (index, spec) in self.specs.iter().enumerate() {
            let index = index as u32;
            let mut params_rng = sample_rng(seed, sample_id, Purpose::TransformParams(index));
            let params = spec
                .kind
                .draw(spec.drift_level, image_size, &mut params_rng);
            // Per-pixel noise needs about a megabyte of random bits per image. xoshiro256++
            // (statistically excellent, not cryptographic, which noise does not need), seeded
            // from the sample's own ChaCha20 noise stream, makes them several times faster than
            // ChaCha8 did.
            let noise_seed: [u8; 32] =
                sample_rng(seed, sample_id, Purpose::TransformNoise(index)).random();
            let mut noise_rng = NoiseRng::from_seed(noise_seed);
            applied.push(AppliedTransform {
                spec: *spec,
                params,
            });
            if let Working::Bytes(image) = &mut working {
                let may_stay = Some(index as usize) == last || spec.kind.exact_on_bytes();
                if may_stay && spec.kind.apply_rgb8(&params, image, &mut noise_rng) {
                    continue;
                }
                let planes = PlanarImage::from_rgb8(image);
                working = Working::Planes(planes);
            }
            if let Working::Planes(planes) = &mut working {
                spec.kind.apply(&params, planes, &mut noise_rng);
            }
        }
        let image = match working {
            Working::Bytes(image) => image,
            Working::Planes(planes) => planes.to_rgb8(),
        };
        (image, applied)
    }
}

/// A chain's image between transforms: 8-bit while every transform so far kept it exact, then
/// float planes.
enum Working {
    Bytes(RgbImage8),
    Planes(PlanarImage),
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
    use drift_core::ImageSize;

    #[test]
    fn parses_and_refuses_specs() {
        let spec: TransformSpec = "gaussian_blur=0.3".parse().unwrap();
        assert_eq!(
            (spec.kind(), spec.drift_level()),
            (kind("gaussian_blur"), 0.3)
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

    fn kind(name: &str) -> TransformKind {
        TransformKind::named(name).unwrap()
    }

    #[test]
    fn names_are_forgiving_and_errors_say_what_to_write() {
        assert_eq!(kind("Gaussian_Blur"), kind("gaussian_blur"));
        let typo = "gausian_blur=0.3".parse::<TransformSpec>().unwrap_err();
        assert!(
            typo.to_string().contains("did you mean 'gaussian_blur'?"),
            "{typo}"
        );
        let missing = "rotate".parse::<TransformSpec>().unwrap_err().to_string();
        assert!(
            missing.contains("'rotate' needs a level") && missing.contains("rotate=0.3"),
            "{missing}"
        );
        let level = "rotate=0.5"
            .parse::<TransformKind>()
            .unwrap_err()
            .to_string();
        assert!(level.contains("without a level"), "{level}");
        let typo = "motion_blr"
            .parse::<TransformKind>()
            .unwrap_err()
            .to_string();
        assert!(typo.contains("did you mean 'motion_blur'?"), "{typo}");
        let far = "sharpen".parse::<TransformKind>().unwrap_err().to_string();
        assert!(!far.contains("did you mean"), "{far}");
    }

    #[test]
    fn draws_stay_in_spec_ranges() {
        let mut rng = sample_rng(1, 2, Purpose::TransformParams(0));
        let size = ImageSize::new(64, 48).unwrap();
        for _ in 0..1000 {
            let angle = kind("rotate").draw(0.5, size, &mut rng).value(0);
            assert!(angle.abs() <= 45.0);
            let factor = kind("saturation").draw(0.1, size, &mut rng).value(0);
            assert!((0.0..=2.5).contains(&factor));
            let factor = kind("brightness").draw(0.2, size, &mut rng).value(0);
            assert!((0.4..=1.6).contains(&factor));
        }
        assert_eq!(
            kind("default").draw(0.5, size, &mut rng),
            Params::new(&[Some(1.5), None])
        );
        let noise = kind("default").draw(0.9, size, &mut rng);
        assert_eq!(noise.get(0), None, "default above 0.5 is noise");
        assert!((noise.value(1) - 0.25).abs() < 1e-12);
        assert_eq!(
            kind("gaussian_noise").draw(0.0, size, &mut rng),
            Params::IDENTITY
        );
    }

    #[test]
    fn registry_names_are_unique_and_columns_fit() {
        let all = TransformKind::all();
        for (i, kind) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|k| k.name() != kind.name()), "{kind}");
            assert!(kind.columns().len() <= MAX_PARAMS, "{kind}");
            assert_eq!(kind.name().parse::<TransformKind>().unwrap(), *kind);
        }
        for kind in all {
            let bare = kind.name().strip_prefix(Family::IMAGENET_C_PREFIX);
            assert_eq!(bare.is_some(), kind.family() == Family::ImageNetC, "{kind}");
            assert_eq!(kind.corruption().is_some(), bare.is_some(), "{kind}");
            if let Some(alias) = kind.alias() {
                assert_eq!(TransformKind::named(alias), Some(*kind));
            }
        }
        // The bare names SPEC's transforms keep.
        for name in ["brightness", "contrast", "gaussian_blur", "gaussian_noise"] {
            assert_eq!(kind(name).family(), Family::Torchvision);
            assert_eq!(
                kind(&format!("imagenet_c:{name}")).family(),
                Family::ImageNetC
            );
        }
        assert_eq!(kind("motion_blur"), kind("imagenet_c:motion_blur"));
        assert_eq!(kind("Pixelate"), kind("imagenet_c:pixelate"));
    }

    #[test]
    fn severities_are_a_shorthand_for_imagenet_c_levels() {
        let spec: TransformSpec = "imagenet_c:motion_blur@3".parse().unwrap();
        assert_eq!(
            (spec.kind(), spec.drift_level()),
            (kind("motion_blur"), 0.6)
        );
        let spec: TransformSpec = "zoom_blur@2.5".parse().unwrap();
        assert_eq!(spec.drift_level(), 0.5);
        let err = "rotate@3".parse::<TransformSpec>().unwrap_err().to_string();
        assert!(err.contains("only ImageNet-C corruptions"), "{err}");
        let err = "motion_blur@6"
            .parse::<TransformSpec>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("[0, 5]"), "{err}");
        let chain: TransformChain = "pixelate@1,rotate=0.5".parse().unwrap();
        assert_eq!(chain.to_string(), "imagenet_c:pixelate=0.2,rotate=0.5");
    }

    #[test]
    fn readme_table_is_the_registry() {
        let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(readme).unwrap();
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's transform table is not the registry's; replace it with:\n{table}"
        );
        let catalog = catalog_table();
        assert!(
            readme.contains(&catalog),
            "README.md's ImageNet-C catalog is not the registry's; replace it with:\n{catalog}"
        );
    }

    #[test]
    fn severities_are_exact_at_fifths() {
        let table = [1.0, 0.6, 0.5, 0.4, 0.3, 0.25];
        for (k, want) in table.iter().enumerate() {
            assert_eq!(
                severity_value(k as f64 * 0.2, &table),
                *want,
                "severity {k}"
            );
        }
        assert!((severity_value(0.1, &table) - 0.8).abs() < 1e-12);
        assert!((severity_value(0.9, &table) - 0.275).abs() < 1e-12);
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
