//! What every transform declares, once: its name, what its level controls, the parameter
//! columns it logs, how it draws them and how it applies them. The list of registered
//! transforms is in `transforms/mod.rs`; everything else (names accepted on the command line,
//! help text, the drift log's keys, the README's tables) is derived from it.

use std::fmt;

use drift_core::{ImageSize, RgbImage8};

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, RngDraws};

/// The generator per-pixel noise is drawn from (xoshiro256++, seeded from the sample's own
/// ChaCha20 noise stream).
pub type NoiseRng = rand::rngs::Xoshiro256PlusPlus;

/// The most parameter columns one transform may log.
pub const MAX_PARAMS: usize = 8;

/// A drawn parameter a transform logs per sample: the key `<transform>.<name>` of
/// `drift_log.parquet`'s `parameters` map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamColumn {
    /// The key's suffix.
    pub name: &'static str,
    /// What the value is, in words (for docs).
    pub meaning: &'static str,
}

/// The family a transform belongs to, told by its name's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// SPEC's transforms, faithful to torchvision (bare names).
    Torchvision,
    /// The ImageNet-C corruptions of the `imagecorruptions` package (`imagenet_c:NAME`), at
    /// severity 5L.
    ImageNetC,
}

impl Family {
    /// The name prefix of an ImageNet-C corruption.
    pub const IMAGENET_C_PREFIX: &str = "imagenet_c:";

    /// The family of a registered name.
    fn of(name: &str) -> Self {
        if name.starts_with(Self::IMAGENET_C_PREFIX) {
            Family::ImageNetC
        } else {
            Family::Torchvision
        }
    }

    /// How `--help`, the README and `drift.json` name it.
    pub fn label(self) -> &'static str {
        match self {
            Family::Torchvision => "torchvision",
            Family::ImageNetC => "imagenet_c",
        }
    }
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
    /// Draws the parameters for one image of `size` at `level` in (0, 1], one value per column
    /// (`None` for a column this draw does not use). Transforms keep the size, so it is the size
    /// `apply` will see (a crop offset can be drawn and logged here).
    fn draw(&self, level: f64, size: ImageSize, rng: &mut dyn rand::Rng) -> Params;
    /// Applies drawn parameters; `noise` feeds per-pixel noise and is untouched otherwise.
    fn apply(&self, params: &Params, image: &mut PlanarImage, noise: &mut NoiseRng);
    /// Applies drawn parameters to 8-bit pixels directly, where this transform has such a path
    /// (`rgb8`): returns true, leaving the bytes `apply` on `PlanarImage::from_rgb8(image)`
    /// followed by `to_rgb8` would, bit for bit. Returns false, touching nothing, where it has
    /// none.
    fn apply_rgb8(&self, _params: &Params, _image: &mut RgbImage8, _noise: &mut NoiseRng) -> bool {
        false
    }
    /// Whether `apply_rgb8`'s bytes are `apply`'s values exactly (times 255), not only their
    /// rounding, so that a chain can go on from them: transforms that move values without
    /// computing them.
    fn exact_on_bytes(&self) -> bool {
        false
    }
    /// The ImageNet-C corruption this transform is, if it is one.
    fn corruption(&self) -> Option<&dyn Corruption> {
        None
    }
}

/// Every ImageNet-C corruption is a transform named `imagenet_c:` and its package name: its
/// scalars are drawn from the sample's parameter stream, its fields from its noise stream.
impl<C: Corruption> Transform for C {
    fn name(&self) -> &'static str {
        Corruption::name(self)
    }

    fn description(&self) -> &'static str {
        Corruption::description(self)
    }

    fn columns(&self) -> &'static [ParamColumn] {
        Corruption::columns(self)
    }

    fn draw(&self, level: f64, size: ImageSize, rng: &mut dyn rand::Rng) -> Params {
        self.params(level, size, &mut RngDraws::new(rng))
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, noise: &mut NoiseRng) {
        self.corrupt(params, image, &mut RngDraws::new(noise));
    }

    fn apply_rgb8(&self, params: &Params, image: &mut RgbImage8, noise: &mut NoiseRng) -> bool {
        self.corrupt_rgb8(params, image, &mut RngDraws::new(noise))
    }

    fn corruption(&self) -> Option<&dyn Corruption> {
        Some(self)
    }
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
    /// The registered transform called `name`, in any case: its full name, or an ImageNet-C
    /// corruption's bare package name where no SPEC transform has it (`motion_blur`, not
    /// `brightness`).
    pub fn named(name: &str) -> Option<Self> {
        let all = crate::transforms::ALL.iter().copied();
        all.clone()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
            .or_else(|| {
                all.clone()
                    .find(|kind| kind.alias().is_some_and(|a| a.eq_ignore_ascii_case(name)))
            })
    }

    /// The bare name an ImageNet-C corruption is also known by, where no SPEC transform has it.
    pub fn alias(self) -> Option<&'static str> {
        let bare = self.name().strip_prefix(Family::IMAGENET_C_PREFIX)?;
        let taken = crate::transforms::ALL
            .iter()
            .any(|kind| kind.name().eq_ignore_ascii_case(bare));
        (!taken).then_some(bare)
    }

    /// Its family: SPEC's torchvision transforms or ImageNet-C.
    pub fn family(self) -> Family {
        Family::of(self.name())
    }

    /// The corruption, for an ImageNet-C transform: the seam through which a test draws its
    /// parameters and fields from numpy's generator instead of ours.
    pub fn corruption(self) -> Option<&'static dyn Corruption> {
        self.0.corruption()
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

    /// Draws this transform's parameters for an image of `size` at `drift_level` (already
    /// checked to be in [0, 1]); level 0 draws nothing.
    pub fn draw(self, drift_level: f64, size: ImageSize, rng: &mut dyn rand::Rng) -> Params {
        if drift_level == 0.0 {
            Params::IDENTITY
        } else {
            self.0.draw(drift_level, size, rng)
        }
    }

    /// Applies parameters drawn by [`TransformKind::draw`].
    pub fn apply(self, params: &Params, image: &mut PlanarImage, noise: &mut NoiseRng) {
        if !params.is_identity() {
            self.0.apply(params, image, noise);
        }
    }

    /// Applies parameters drawn by [`TransformKind::draw`] to 8-bit pixels, if this transform
    /// has a byte path: true when it did (with the bytes of [`TransformKind::apply`] and the
    /// final rounding), false when it has none and touched nothing.
    pub fn apply_rgb8(self, params: &Params, image: &mut RgbImage8, noise: &mut NoiseRng) -> bool {
        params.is_identity() || self.0.apply_rgb8(params, image, noise)
    }

    /// Whether the byte path's output is the planar path's values exactly (see
    /// [`Transform::exact_on_bytes`]).
    pub fn exact_on_bytes(self) -> bool {
        self.0.exact_on_bytes()
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

/// The README's transform table, as markdown: a row per registered transform.
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| transform | family | drift_level L controls | logged per sample |\n|---|---|---|---|\n",
    );
    for kind in TransformKind::all() {
        let columns: Vec<String> = kind
            .columns()
            .iter()
            .map(|c| format!("`{}.{}` ({})", kind.name(), c.name, c.meaning))
            .collect();
        let name = match kind.alias() {
            Some(alias) => format!("`{}` (`{alias}`)", kind.name()),
            None => format!("`{}`", kind.name()),
        };
        table.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            kind.family().label(),
            kind.description(),
            columns.join(", ")
        ));
    }
    table
}

/// The README's ImageNet-C catalog, as markdown: per corruption, what differs from
/// `imagecorruptions` 1.1.2 and how close the golden test holds it.
pub fn catalog_table() -> String {
    let mut table = String::from(
        "| corruption | differs from imagecorruptions 1.1.2 | parity at severities 1-5 |\n|---|---|---|\n",
    );
    for kind in TransformKind::all() {
        if let Some(corruption) = kind.corruption() {
            table.push_str(&format!(
                "| `{}` | {} | {} |\n",
                kind.name(),
                corruption.differences(),
                corruption.parity()
            ));
        }
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
