//! What every transform declares, once: its name, what its level controls, the parameter
//! columns it logs, how it draws them and how it applies them. The list of registered
//! transforms is in `transforms/mod.rs`; everything else (names accepted on the command line,
//! help text, the drift log's columns, the README's table) is derived from it.

use std::fmt;
use std::sync::LazyLock;

use crate::PlanarImage;

/// The generator per-pixel noise is drawn from (xoshiro256++, seeded from the sample's own
/// ChaCha20 noise stream).
pub type NoiseRng = rand::rngs::Xoshiro256PlusPlus;

/// The most parameter columns one transform may log.
pub const MAX_PARAMS: usize = 4;

/// A drawn parameter a transform logs per sample: the column `<transform>_<name>` of
/// `drift_log.parquet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamColumn {
    /// The column's suffix.
    pub name: &'static str,
    /// What the value is, in words (for docs).
    pub meaning: &'static str,
}

/// One drift transform. Implementations are unit structs registered in `transforms/mod.rs`.
///
/// Level 0 is the identity for every transform: the chain neither draws nor applies at level 0,
/// so `draw` and `apply` only ever see levels in (0, 1].
pub trait Transform: Sync + 'static {
    /// The name on the command line, in scenario files and in `drift.json`.
    fn name(&self) -> &'static str;
    /// What the level controls and what is drawn per image (help text and README table).
    fn description(&self) -> &'static str;
    /// The parameters logged per sample, in order; at most [`MAX_PARAMS`].
    fn columns(&self) -> &'static [ParamColumn];
    /// Draws the parameters for one image at `level` in (0, 1], one value per column (`None`
    /// for a column this draw does not use).
    fn draw(&self, level: f64, rng: &mut dyn rand::Rng) -> Params;
    /// Applies drawn parameters; `noise` feeds per-pixel noise and is untouched otherwise.
    fn apply(&self, params: &Params, image: &mut PlanarImage, noise: &mut NoiseRng);
}

/// Parameters drawn for one image: one value per column of its transform.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Params {
    values: [Option<f64>; MAX_PARAMS],
}

impl Params {
    /// Nothing drawn (level 0).
    pub const IDENTITY: Params = Params {
        values: [None; MAX_PARAMS],
    };

    /// Values for the first columns, in order.
    pub fn new(values: &[Option<f64>]) -> Self {
        assert!(
            values.len() <= MAX_PARAMS,
            "at most {MAX_PARAMS} parameters"
        );
        let mut out = Self::IDENTITY;
        out.values[..values.len()].copy_from_slice(values);
        out
    }

    /// One parameter.
    pub fn one(value: f64) -> Self {
        Self::new(&[Some(value)])
    }

    /// The value of column `index`, if drawn.
    pub fn get(&self, index: usize) -> Option<f64> {
        self.values.get(index).copied().flatten()
    }

    /// The value of column `index`; a transform's own apply calls this for what its draw always
    /// sets.
    pub(crate) fn value(&self, index: usize) -> f64 {
        self.get(index)
            .expect("a transform's draw sets the columns its apply reads")
    }

    /// True when nothing was drawn.
    pub fn is_identity(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }
}

/// A registered transform, by handle: cheap to copy, compared by name.
#[derive(Clone, Copy)]
pub struct TransformKind(pub(crate) &'static dyn Transform);

impl TransformKind {
    /// The registered transform called `name`, in any case.
    pub fn named(name: &str) -> Option<Self> {
        crate::transforms::ALL
            .iter()
            .copied()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
    }

    /// Every registered transform, in registration order.
    pub fn all() -> &'static [TransformKind] {
        crate::transforms::ALL
    }

    /// The name used on the command line, in scenarios and in `drift.json`.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// What the level controls, in words.
    pub fn description(self) -> &'static str {
        self.0.description()
    }

    /// The parameters it logs.
    pub fn columns(self) -> &'static [ParamColumn] {
        self.0.columns()
    }

    /// Draws this transform's parameters at `drift_level` (already checked to be in [0, 1]);
    /// level 0 draws nothing.
    pub fn draw(self, drift_level: f64, rng: &mut dyn rand::Rng) -> Params {
        if drift_level == 0.0 {
            Params::IDENTITY
        } else {
            self.0.draw(drift_level, rng)
        }
    }

    /// Applies parameters drawn by [`TransformKind::draw`].
    pub fn apply(self, params: &Params, image: &mut PlanarImage, noise: &mut NoiseRng) {
        if !params.is_identity() {
            self.0.apply(params, image, noise);
        }
    }

    /// Position in the registry.
    fn index(self) -> usize {
        Self::all()
            .iter()
            .position(|kind| kind.name() == self.name())
            .expect("every kind is registered")
    }

    /// Where this transform's columns start in [`log_columns`]: its level column, then its
    /// parameters.
    pub fn log_offset(self) -> usize {
        Self::all()[..self.index()]
            .iter()
            .map(|kind| 1 + kind.columns().len())
            .sum()
    }
}

impl PartialEq for TransformKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for TransformKind {}

impl std::hash::Hash for TransformKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for TransformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransformKind({})", self.name())
    }
}

impl fmt::Display for TransformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The parameter columns of `drift_log.parquet`, in order: for each registered transform its
/// level (`<name>_level`) and its parameters (`<name>_<column>`).
pub fn log_columns() -> &'static [String] {
    static COLUMNS: LazyLock<Vec<String>> = LazyLock::new(|| {
        TransformKind::all()
            .iter()
            .flat_map(|kind| {
                std::iter::once(format!("{}_level", kind.name())).chain(
                    kind.columns()
                        .iter()
                        .map(move |column| format!("{}_{}", kind.name(), column.name)),
                )
            })
            .collect()
    });
    &COLUMNS
}

/// The README's transform table, as markdown: a row per registered transform.
pub fn markdown_table() -> String {
    let mut table =
        String::from("| transform | drift_level L controls | logged per sample |\n|---|---|---|\n");
    for kind in TransformKind::all() {
        let columns: Vec<String> = std::iter::once(format!("`{}_level`", kind.name()))
            .chain(
                kind.columns()
                    .iter()
                    .map(|c| format!("`{}_{}` ({})", kind.name(), c.name, c.meaning)),
            )
            .collect();
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            kind.name(),
            kind.description(),
            columns.join(", ")
        ));
    }
    table
}

/// ImageNet-C's severities on a continuous level, as the CCC benchmark does it: severity
/// s = 5L, the parameter interpolated piecewise-linearly over `table` (row 0 is the identity,
/// rows 1-5 ImageNet-C's severities), so L = 0 is the identity and L = k/5 is exactly
/// severity k (s is snapped to the integer it is within 1e-9 of, so 0.6 x 5 gives 3).
pub fn severity_value(level: f64, table: &[f64; 6]) -> f64 {
    let mut s = (5.0 * level).clamp(0.0, 5.0);
    if (s - s.round()).abs() < 1e-9 {
        s = s.round();
    }
    let below = s.floor() as usize;
    let t = s - below as f64;
    if t == 0.0 {
        return table[below];
    }
    table[below] + (table[below + 1] - table[below]) * t
}
