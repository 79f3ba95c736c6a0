//! How strong is a drift? SPEC's measure: the KL divergence between the softmax of drifted and
//! clean ResNet18 embeddings, averaged over a batch ([`batch_kl`]); per-level statistics of the
//! batch KLs ([`LevelSummary`], `summary.csv`); the two plots of a sweep ([`line_plot`],
//! [`box_plot`]) and a drift log over time ([`timeline_plot`]), as RGB pixels and SVG; a contact
//! sheet of images ([`contact_sheet`]).
//!
//! Pure computation: no files, no threads. The sweep itself (decode, transform, embed) is
//! `drift-pipeline`'s `evaluate`.

mod kl;
mod plot;
mod power_plot;
mod sheet;
mod stats;

pub use kl::{batch_kl, kl_divergence};
pub use plot::{
    DetectorTrace, LevelSeries, PLOT_SIZE, Plot, PlotLabels, box_plot, line_plot, timeline_plot,
};
pub use power_plot::{
    LevelLine, LevelPanel, calibration_plot, delay_far_plot, delay_plot, power_plot,
};
pub use sheet::{SHEET_GAP, SheetLayout, contact_sheet};
pub use stats::{LevelSummary, quantile_sorted, summary_csv};

/// Why a KL or a plot could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The two sides of a batch hold different numbers of embeddings.
    #[error("a batch has {drifted} drifted but {clean} clean embeddings")]
    BatchMismatch {
        /// Drifted rows.
        drifted: usize,
        /// Clean rows.
        clean: usize,
    },
    /// A batch without embeddings.
    #[error("a batch holds no embeddings")]
    EmptyBatch,
    /// Two embeddings of one image differ in length, or are empty.
    #[error("row {row}: the drifted embedding has {drifted} values, the clean one {clean}")]
    RowMismatch {
        /// The row in its batch.
        row: usize,
        /// Values in the drifted embedding.
        drifted: usize,
        /// Values in the clean embedding.
        clean: usize,
    },
    /// An embedding holds NaN or infinity.
    #[error("row {row}: an embedding holds NaN or infinity")]
    NotFinite {
        /// The row in its batch.
        row: usize,
    },
    /// plotters failed.
    #[error("cannot draw the plot: {0}")]
    Plot(String),
}
