//! Drift over time: how a segment's transform list reaches its samples. A sample at position k
//! of a segment of n samples (t = k / (n - 1) from 0 to 1) is drifted with probability p(k),
//! drawn from its own (seed, sample_id, DriftSelection) stream, so shapes stay deterministic at
//! any thread count.

use std::fmt;
use std::str::FromStr;

use drift_core::{Purpose, RgbImage8, sample_rng};
use rand::RngExt;

use crate::{AppliedTransform, Params, TransformChain, TransformError, TransformSpec};

/// How the transition to a gradual drift is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ramp {
    /// MOA's sigmoid 1 / (1 + exp(-4 (x - 1/2))) over the window, rescaled to run from exactly
    /// 0 at its start to exactly 1 at its end.
    #[default]
    Sigmoid,
    /// A straight line from 0 to 1 across the window.
    Linear,
}

/// The shape of a drift over a segment's samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DriftShape {
    /// Every sample gets the transforms (the Python tool's only shape).
    #[default]
    Abrupt,
    /// Samples switch from clean to drifted across a window of `width` samples centred at sample
    /// `center` of the segment (default: its middle): clean before it, drifted after it, and
    /// drifted with probability p rising from 0 to 1 inside it.
    Gradual {
        /// Window length in samples (at least 1).
        width: u64,
        /// Window centre, as a position in the segment; `None` is the segment's middle.
        center: Option<f64>,
        /// The rise inside the window.
        ramp: Ramp,
    },
    /// Every sample is drifted, each transform at its level times a factor moving linearly from
    /// `from` (first sample) to `to` (last sample).
    Incremental {
        /// Factor at the first sample, in [0, 1].
        from: f64,
        /// Factor at the last sample, in [0, 1].
        to: f64,
    },
    /// The drift is on for the first `duty` fraction of every `period` samples, off for the rest.
    Recurring {
        /// Samples per cycle (at least 1).
        period: u64,
        /// Fraction of each cycle that is drifted, in [0, 1].
        duty: f64,
    },
}

/// Where a sample sits in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentPosition {
    /// The sample's index in the segment, from 0.
    pub index: u64,
    /// Samples in the segment.
    pub len: u64,
}

impl SegmentPosition {
    /// t in [0, 1]: 0 for the first sample, 1 for the last (0 for a one-sample segment).
    pub fn t(self) -> f64 {
        if self.len <= 1 {
            0.0
        } else {
            self.index as f64 / (self.len - 1) as f64
        }
    }
}

impl DriftShape {
    /// The probability that the sample at `position` is drifted, and the factor its transforms'
    /// levels are multiplied by.
    pub fn at(&self, position: SegmentPosition) -> (f64, f64) {
        match *self {
            DriftShape::Abrupt => (1.0, 1.0),
            DriftShape::Gradual {
                width,
                center,
                ramp,
            } => {
                let center = center.unwrap_or((position.len.saturating_sub(1)) as f64 / 2.0);
                let start = center - width as f64 / 2.0;
                let x = ((position.index as f64 - start) / width as f64).clamp(0.0, 1.0);
                let p = match ramp {
                    Ramp::Linear => x,
                    Ramp::Sigmoid => {
                        let sigmoid = |x: f64| 1.0 / (1.0 + (-4.0 * (x - 0.5)).exp());
                        ((sigmoid(x) - sigmoid(0.0)) / (sigmoid(1.0) - sigmoid(0.0)))
                            .clamp(0.0, 1.0)
                    }
                };
                (p, 1.0)
            }
            DriftShape::Incremental { from, to } => (1.0, from + (to - from) * position.t()),
            DriftShape::Recurring { period, duty } => {
                let on = (duty * period as f64).round() as u64;
                (
                    if position.index % period < on {
                        1.0
                    } else {
                        0.0
                    },
                    1.0,
                )
            }
        }
    }

    /// Checks the parameters' ranges.
    pub fn validate(&self) -> Result<(), TransformError> {
        let bad = |reason: String| Err(TransformError::Shape { reason });
        match *self {
            DriftShape::Abrupt => Ok(()),
            DriftShape::Gradual { width, center, .. } => {
                if width == 0 {
                    return bad("gradual: width must be at least 1".into());
                }
                match center {
                    Some(c) if !c.is_finite() => bad(format!("gradual: center {c} is not finite")),
                    _ => Ok(()),
                }
            }
            DriftShape::Incremental { from, to } => {
                for (key, value) in [("from", from), ("to", to)] {
                    if !(0.0..=1.0).contains(&value) {
                        return bad(format!("incremental: {key} = {value} is outside [0, 1]"));
                    }
                }
                Ok(())
            }
            DriftShape::Recurring { period, duty } => {
                if period == 0 {
                    return bad("recurring: period must be at least 1".into());
                }
                if !(0.0..=1.0).contains(&duty) {
                    return bad(format!("recurring: duty = {duty} is outside [0, 1]"));
                }
                Ok(())
            }
        }
    }

    /// The shape's name: abrupt, gradual, incremental or recurring.
    pub fn name(&self) -> &'static str {
        match self {
            DriftShape::Abrupt => "abrupt",
            DriftShape::Gradual { .. } => "gradual",
            DriftShape::Incremental { .. } => "incremental",
            DriftShape::Recurring { .. } => "recurring",
        }
    }
}

impl FromStr for DriftShape {
    type Err = TransformError;

    /// `abrupt`, `gradual:width=500[,center=250][,ramp=linear]`,
    /// `incremental:from=0,to=1`, `recurring:period=100,duty=0.3`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| TransformError::Shape { reason };
        let (name, args) = text.trim().split_once(':').unwrap_or((text.trim(), ""));
        let mut pairs = Vec::new();
        for part in args.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{name}: '{part}' is not KEY=VALUE")))?;
            pairs.push((key.trim(), value.trim()));
        }
        let known: &[&str] = match name {
            "abrupt" => &[],
            "gradual" => &["width", "center", "ramp"],
            "incremental" => &["from", "to"],
            "recurring" => &["period", "duty"],
            other => {
                return Err(bad(format!(
                    "unknown drift shape '{other}' (valid: abrupt, gradual, incremental, recurring)"
                )));
            }
        };
        if let Some((key, _)) = pairs.iter().find(|(k, _)| !known.contains(k)) {
            return Err(bad(format!(
                "{name}: unknown key '{key}' (valid: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        let get = |key: &str| pairs.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let number = |key: &str| -> Result<Option<f64>, TransformError> {
            get(key)
                .map(|v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| bad(format!("{name}: {key} = '{v}' is not a number")))
                })
                .transpose()
        };
        let count = |key: &str| -> Result<u64, TransformError> {
            let v = get(key).ok_or_else(|| bad(format!("{name}: {key} is required")))?;
            v.parse::<u64>()
                .map_err(|_| bad(format!("{name}: {key} = '{v}' is not a whole number")))
        };
        let required = |key: &str| -> Result<f64, TransformError> {
            number(key)?.ok_or_else(|| bad(format!("{name}: {key} is required")))
        };
        let shape = match name {
            "abrupt" => DriftShape::Abrupt,
            "gradual" => DriftShape::Gradual {
                width: count("width")?,
                center: number("center")?,
                ramp: match get("ramp") {
                    None | Some("sigmoid") => Ramp::Sigmoid,
                    Some("linear") => Ramp::Linear,
                    Some(other) => {
                        return Err(bad(format!(
                            "gradual: ramp '{other}' is not sigmoid or linear"
                        )));
                    }
                },
            },
            "incremental" => DriftShape::Incremental {
                from: required("from")?,
                to: required("to")?,
            },
            _ => DriftShape::Recurring {
                period: count("period")?,
                duty: required("duty")?,
            },
        };
        shape.validate()?;
        Ok(shape)
    }
}

impl fmt::Display for DriftShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DriftShape::Abrupt => write!(f, "abrupt"),
            DriftShape::Gradual {
                width,
                center,
                ramp,
            } => {
                write!(f, "gradual:width={width}")?;
                if let Some(center) = center {
                    write!(f, ",center={center}")?;
                }
                if ramp == Ramp::Linear {
                    write!(f, ",ramp=linear")?;
                }
                Ok(())
            }
            DriftShape::Incremental { from, to } => write!(f, "incremental:from={from},to={to}"),
            DriftShape::Recurring { period, duty } => {
                write!(f, "recurring:period={period},duty={duty}")
            }
        }
    }
}

/// A transform list and the shape it arrives in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drift {
    chain: TransformChain,
    shape: DriftShape,
}

/// What the drift did to one sample: the ground truth of `drift_log.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftOutcome {
    /// Whether the sample was drawn from the drifted concept (its transforms were applied).
    pub drifted: bool,
    /// The probability it had of being drifted.
    pub probability: f64,
    /// The transforms applied, with their levels and drawn parameters (empty when clean).
    pub applied: Vec<AppliedTransform>,
}

impl Drift {
    /// No drift.
    pub fn none() -> Self {
        Self::default()
    }

    /// `chain` arriving as `shape`. A transform may appear once per list (the drift log has one
    /// column per transform).
    pub fn new(chain: TransformChain, shape: DriftShape) -> Result<Self, TransformError> {
        shape.validate()?;
        for (i, spec) in chain.specs().iter().enumerate() {
            if chain.specs()[..i].iter().any(|s| s.kind() == spec.kind()) {
                return Err(TransformError::Repeated {
                    name: spec.kind().name().to_owned(),
                });
            }
        }
        Ok(Self { chain, shape })
    }

    /// The transform list (at full level).
    pub fn chain(&self) -> &TransformChain {
        &self.chain
    }

    /// The shape.
    pub fn shape(&self) -> DriftShape {
        self.shape
    }

    /// True when no sample can change.
    pub fn is_none(&self) -> bool {
        self.chain.is_identity()
    }

    /// Decides whether sample `sample_id`, at `position` in its segment, is drifted, and if so
    /// applies the transform list at the shape's levels (see [`TransformChain::apply`]).
    pub fn apply(
        &self,
        image: RgbImage8,
        seed: u64,
        sample_id: u64,
        position: SegmentPosition,
    ) -> (RgbImage8, DriftOutcome) {
        let clean = |image, probability| {
            (
                image,
                DriftOutcome {
                    drifted: false,
                    probability,
                    applied: Vec::new(),
                },
            )
        };
        if self.is_none() {
            return clean(image, 0.0);
        }
        let (probability, factor) = self.shape.at(position);
        // p = 1 and p = 0 need no draw; in between, the sample's own stream decides.
        let drifted = probability >= 1.0
            || (probability > 0.0
                && sample_rng(seed, sample_id, Purpose::DriftSelection).random::<f64>()
                    < probability);
        if !drifted {
            return clean(image, probability);
        }
        let scaled;
        let chain = if factor == 1.0 {
            &self.chain
        } else {
            scaled = TransformChain::new(
                self.chain
                    .specs()
                    .iter()
                    .map(|s| {
                        TransformSpec::new(s.kind(), (s.drift_level() * factor).clamp(0.0, 1.0))
                            .expect("a level in [0, 1] times a factor in [0, 1] is in [0, 1]")
                    })
                    .collect(),
            );
            &scaled
        };
        // A chain at level 0 changes nothing, but the log still says which levels were set.
        let (image, applied) = if chain.is_identity() {
            let applied = chain
                .specs()
                .iter()
                .map(|&spec| AppliedTransform {
                    spec,
                    params: Params::IDENTITY,
                })
                .collect();
            (image, applied)
        } else {
            chain.apply(image, seed, sample_id)
        };
        (
            image,
            DriftOutcome {
                drifted: true,
                probability,
                applied,
            },
        )
    }
}

impl DriftOutcome {
    /// The sample's drift log row: each applied transform's level under its name, each drawn
    /// parameter under `transform.parameter`, in chain order.
    pub fn log_row(&self) -> drift_core::DriftLogRow {
        let mut levels = Vec::with_capacity(self.applied.len());
        let mut parameters = Vec::new();
        for applied in &self.applied {
            let kind = applied.spec.kind();
            levels.push((kind.name().to_owned(), applied.spec.drift_level()));
            for (index, column) in kind.columns().iter().enumerate() {
                if let Some(value) = applied.params.get(index) {
                    parameters.push((format!("{}.{}", kind.name(), column.name), value));
                }
            }
        }
        drift_core::DriftLogRow {
            drifted: self.drifted,
            probability: self.probability,
            levels,
            parameters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(index: u64, len: u64) -> SegmentPosition {
        SegmentPosition { index, len }
    }

    #[test]
    fn parses_and_prints_shapes() {
        for text in [
            "abrupt",
            "gradual:width=500",
            "gradual:width=10,center=3.5,ramp=linear",
            "incremental:from=0,to=1",
            "recurring:period=100,duty=0.3",
        ] {
            let shape: DriftShape = text.parse().unwrap();
            assert_eq!(shape.to_string(), text);
        }
        for (bad, needle) in [
            ("sudden", "unknown drift shape 'sudden'"),
            ("gradual", "width is required"),
            ("gradual:width=0", "width must be at least 1"),
            ("gradual:width=-3", "not a whole number"),
            ("gradual:width=5,ramp=cubic", "ramp 'cubic'"),
            ("gradual:widht=5", "unknown key 'widht'"),
            ("incremental:from=0,to=1.5", "to = 1.5 is outside [0, 1]"),
            ("incremental:from=0", "to is required"),
            ("recurring:period=0,duty=0.5", "period must be at least 1"),
            ("recurring:period=10,duty=x", "duty = 'x' is not a number"),
            ("abrupt:width=3", "unknown key 'width'"),
        ] {
            let err = bad.parse::<DriftShape>().unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn gradual_spans_its_window_exactly() {
        for ramp in [Ramp::Sigmoid, Ramp::Linear] {
            let shape = DriftShape::Gradual {
                width: 100,
                center: Some(150.0),
                ramp,
            };
            let p = |k| shape.at(position(k, 300)).0;
            assert_eq!(p(0), 0.0);
            assert_eq!(p(100), 0.0, "the window starts at 100");
            assert!(
                (p(150) - 0.5).abs() < 1e-12,
                "{ramp:?}: half way at the centre"
            );
            assert_eq!(p(200), 1.0, "the window ends at 200");
            assert_eq!(p(299), 1.0);
            assert!((100..200).all(|k| p(k) <= p(k + 1)), "rising");
        }
        let sigmoid = DriftShape::Gradual {
            width: 100,
            center: Some(150.0),
            ramp: Ramp::Sigmoid,
        };
        // The sigmoid starts slower than the line.
        assert!(sigmoid.at(position(110, 300)).0 < 0.1);
    }

    #[test]
    fn incremental_and_recurring() {
        let inc = DriftShape::Incremental { from: 0.2, to: 1.0 };
        assert_eq!(inc.at(position(0, 5)), (1.0, 0.2));
        assert_eq!(inc.at(position(4, 5)), (1.0, 1.0));
        assert!((inc.at(position(2, 5)).1 - 0.6).abs() < 1e-12);
        let rec = DriftShape::Recurring {
            period: 10,
            duty: 0.3,
        };
        let on: Vec<bool> = (0..20).map(|k| rec.at(position(k, 20)).0 == 1.0).collect();
        assert_eq!(on.iter().filter(|&&x| x).count(), 6);
        assert!(on[0] && on[2] && !on[3] && on[10] && !on[19]);
    }

    #[test]
    fn drift_logs_what_it_applied() {
        let size = drift_core::ImageSize::new(8, 8).unwrap();
        let image = RgbImage8::from_pixels(size, (0..192).map(|i| i as u8).collect()).unwrap();
        let chain: TransformChain = "rotate=0.5,default=0.9".parse().unwrap();
        let drift = Drift::new(chain, DriftShape::Incremental { from: 0.0, to: 1.0 }).unwrap();
        let (_, first) = drift.apply(image.clone(), 1, 0, position(0, 3));
        let (_, last) = drift.apply(image.clone(), 1, 2, position(2, 3));
        assert!(first.drifted && last.drifted);
        let row = last.log_row();
        assert_eq!(
            row.levels,
            [("rotate".to_owned(), 0.5), ("default".to_owned(), 0.9)]
        );
        let keys: Vec<&str> = row.parameters.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["rotate.angle", "default.noise_sigma"],
            "default at 0.9 is noise, not blur"
        );
        assert!(row.parameters[0].1.abs() <= 45.0);
        assert!((row.parameters[1].1 - 0.25).abs() < 1e-12);
        let first = first.log_row();
        assert_eq!(first.levels[0], ("rotate".to_owned(), 0.0), "level 0 first");
        assert!(first.parameters.is_empty(), "level 0 draws nothing");

        let repeated: TransformChain = "hue=0.1,hue=0.2".parse().unwrap();
        assert!(
            Drift::new(repeated, DriftShape::Abrupt)
                .unwrap_err()
                .to_string()
                .contains("hue")
        );
        let (same, outcome) = Drift::none().apply(image.clone(), 1, 0, position(0, 1));
        assert_eq!(
            (same, outcome.drifted, outcome.probability),
            (image, false, 0.0)
        );
    }
}
