//! Label shift: the class proportions a `sample` call draws in, checked against the dataset's
//! classes and turned into the sampler's [`ClassPlan`].

use drift_core::{ClassTable, Purpose, sample_rng};
use drift_sampler::{ClassPlan, Sampler, SamplerError};
use rand::RngExt;

use crate::PipelineError;

/// Label shift that cannot be applied to a dataset.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LabelShiftError {
    /// A weight for a class the dataset does not have.
    #[error("label shift: '{name}' is not a class (classes: {})", classes.join(", "))]
    UnknownClass {
        /// The name given.
        name: String,
        /// The dataset's classes.
        classes: Vec<String>,
    },
    /// A weight that is negative or not a number.
    #[error("label shift: the weight of {class} must be a number >= 0, got {weight}")]
    BadWeight {
        /// The class.
        class: String,
        /// Its weight.
        weight: f64,
    },
    /// Every weight is 0: no class could be drawn.
    #[error("label shift: at least one class weight must be above 0")]
    AllZero,
    /// A Dirichlet concentration that is not above 0.
    #[error("label shift: the Dirichlet concentration must be above 0, got {0}")]
    Concentration(f64),
    /// A class whose unused images run out before the call's samples are drawn.
    #[error(
        "label shift: class {class} ran out: all its {images} images are used (allow reusing \
         them, with replacement, or lower its weight)"
    )]
    ClassRanOut {
        /// The class.
        class: String,
        /// Its images.
        images: usize,
    },
}

/// Which class proportions samples are drawn in.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ClassPriors {
    /// The permutation order: the proportions of the unused images.
    #[default]
    AsInDataset,
    /// Relative weights by class name; classes not named are not drawn.
    Weights(Vec<(String, f64)>),
    /// Priors drawn once per `sample` call from a symmetric Dirichlet with this concentration
    /// (small: a few classes dominate; large: close to uniform).
    Dirichlet(f64),
}

/// Label shift of later samples: the class priors, and whether a class that runs out of unused
/// images may reuse them (otherwise that is an error, raised before anything is written).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelShift {
    /// The class proportions.
    pub priors: ClassPriors,
    /// Reuse images of a class once all of them are used.
    pub with_replacement: bool,
}

impl LabelShift {
    /// Refuses unknown classes, negative or non-finite weights, all-zero weights and a
    /// concentration that is not above 0.
    pub(crate) fn validate(&self, classes: &ClassTable) -> Result<(), LabelShiftError> {
        match &self.priors {
            ClassPriors::AsInDataset => Ok(()),
            ClassPriors::Weights(weights) => {
                for (name, weight) in weights {
                    if classes.label(name).is_none() {
                        return Err(LabelShiftError::UnknownClass {
                            name: name.clone(),
                            classes: classes.names().to_vec(),
                        });
                    }
                    if !weight.is_finite() || *weight < 0.0 {
                        return Err(LabelShiftError::BadWeight {
                            class: name.clone(),
                            weight: *weight,
                        });
                    }
                }
                if weights.iter().all(|(_, w)| *w == 0.0) {
                    return Err(LabelShiftError::AllZero);
                }
                Ok(())
            }
            ClassPriors::Dirichlet(alpha) if !alpha.is_finite() || *alpha <= 0.0 => {
                Err(LabelShiftError::Concentration(*alpha))
            }
            ClassPriors::Dirichlet(_) => Ok(()),
        }
    }

    /// The sampler's plan for the next call. Dirichlet priors are drawn from (seed, the call's
    /// first sample_id), so each call (segment) gets its own.
    pub(crate) fn plan(&self, classes: &ClassTable, sampler: &Sampler) -> ClassPlan {
        let weights = match &self.priors {
            ClassPriors::AsInDataset => return ClassPlan::AsInDataset,
            ClassPriors::Weights(weights) => (0..classes.len())
                .map(|label| {
                    let name = classes.name(label).unwrap_or_default();
                    weights
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, w)| *w)
                        .sum()
                })
                .collect(),
            ClassPriors::Dirichlet(alpha) => {
                // Dirichlet(alpha, ..., alpha) as normalised Gamma(alpha, 1) draws.
                let gamma = rand_distr::Gamma::new(*alpha, 1.0).expect("alpha was validated");
                let mut rng = sample_rng(
                    sampler.seed(),
                    sampler.next_sample_id(),
                    Purpose::ClassPriors,
                );
                (0..classes.len()).map(|_| rng.sample(gamma)).collect()
            }
        };
        ClassPlan::Weighted {
            weights,
            with_replacement: self.with_replacement,
        }
    }
}

/// Checks that `n` samples can be taken under `plan`, naming a class that would run out.
pub(crate) fn check(
    sampler: &Sampler,
    n: u64,
    plan: &ClassPlan,
    classes: &ClassTable,
) -> Result<(), PipelineError> {
    sampler.check(n, plan).map_err(|error| match error {
        SamplerError::ClassRanOut { label, images } => LabelShiftError::ClassRanOut {
            class: classes.name(label).unwrap_or("?").to_owned(),
            images,
        }
        .into(),
        other => other.into(),
    })
}
