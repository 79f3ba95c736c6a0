//! The two plots of a sweep, drawn once for a bitmap and once for SVG: batch KL per drift level
//! over batch index (a line each, with a mean ± 1.96 sd band), and one box per drift level.

use std::ops::Range;
use std::sync::Once;

use drift_core::{ImageSize, LoggedSample, RgbImage8};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::MeasureError;
use crate::stats::LevelSummary;

/// Plot size in pixels (and SVG user units).
pub const PLOT_SIZE: (u32, u32) = (1100, 650);

pub(crate) const FONT: &str = "sans-serif";

/// One drift level's batch KLs, in batch order.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelSeries {
    /// The drift level.
    pub drift_level: f64,
    /// KL of batch 0, 1, ...
    pub kls: Vec<f64>,
}

/// A plot as 8-bit RGB pixels (to encode as PNG) and as an SVG document.
#[derive(Debug, Clone)]
pub struct Plot {
    /// The bitmap rendering.
    pub rgb: RgbImage8,
    /// The SVG rendering (text as `<text>` in a sans-serif font).
    pub svg: String,
}

/// What the plots say about the sweep: the title's subject and the y axis.
#[derive(Debug, Clone, Copy)]
pub struct PlotLabels<'a> {
    /// The transform list, as in `--transform` (e.g. `default` or `rotate+hue`).
    pub transforms: &'a str,
    /// The batch size (said in the title).
    pub batch_size: usize,
    /// Images at each level: a last batch smaller than `batch_size` is marked as such.
    pub images: u64,
    /// The line under the title: the dataset, the weights (reference or not), the
    /// normalization.
    pub context: &'a str,
}

impl PlotLabels<'_> {
    /// Images in the last batch when it is smaller than the others.
    fn partial_last_batch(&self) -> Option<u64> {
        let batch = self.batch_size as u64;
        match self.images % batch.max(1) {
            0 => None,
            last if self.images > batch => Some(last),
            _ => None,
        }
    }
}

/// The title over `area` and `labels.context` under it; the area below both.
fn titled<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    labels: PlotLabels<'_>,
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    let below = area.titled(title, (FONT, 24))?;
    below.draw(&Text::new(
        labels.context.to_owned(),
        (70, 2),
        (FONT, 15).into_font(),
    ))?;
    Ok(below.margin(24, 0, 0, 0))
}

/// Batch KL over batch index, one line per level, each with a band at its mean ± 1.96 sd.
pub fn line_plot(labels: PlotLabels<'_>, series: &[LevelSeries]) -> Result<Plot, MeasureError> {
    render(&Lines { labels, series })
}

/// One box per drift level: quartiles, median, Tukey whiskers (the furthest batch within
/// 1.5 IQR of the box) and the batches beyond them as points.
pub fn box_plot(labels: PlotLabels<'_>, series: &[LevelSeries]) -> Result<Plot, MeasureError> {
    render(&Boxes { labels, series })
}

pub(crate) type DrawResult<DB> =
    Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A plot that can be drawn on any plotters backend.
pub(crate) trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

struct Lines<'a> {
    labels: PlotLabels<'a>,
    series: &'a [LevelSeries],
}

impl Figure for Lines<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw_lines(root, self.labels, self.series)
    }
}

struct Boxes<'a> {
    labels: PlotLabels<'a>,
    series: &'a [LevelSeries],
}

impl Figure for Boxes<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw_boxes(root, self.labels, self.series)
    }
}

/// Draws `figure` on a bitmap and on an SVG backend.
pub(crate) fn render(figure: &impl Figure) -> Result<Plot, MeasureError> {
    render_sized(figure, PLOT_SIZE)
}

/// [`render`] at `(width, height)`.
pub(crate) fn render_sized(
    figure: &impl Figure,
    (width, height): (u32, u32),
) -> Result<Plot, MeasureError> {
    register_font();
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        figure.draw(&root).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        figure.draw(&root).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    let size = ImageSize::new(width, height).expect("the plot size is valid");
    let rgb = RgbImage8::from_pixels(size, pixels).expect("the buffer matches the size");
    Ok(Plot { rgb, svg })
}

pub(crate) fn plot_error<E: std::error::Error + Send + Sync>(
    error: DrawingAreaErrorKind<E>,
) -> MeasureError {
    MeasureError::Plot(error.to_string())
}

/// plotters draws text with ab_glyph from fonts registered by name: DejaVu Sans, embedded, so
/// plots look the same everywhere and need no system fonts.
pub(crate) fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans is a valid font"));
    });
}

/// The colour of a level: viridis from dark blue (low) to green-yellow (high), stopping short
/// of the yellow end, which vanishes on white.
fn level_color(index: usize, count: usize) -> RGBColor {
    let t = if count <= 1 {
        0.0
    } else {
        index as f64 / (count - 1) as f64
    };
    ViridisRGB::get_color_normalized(0.85 * t, 0.0, 1.0)
}

/// A level as written in `--levels` (`0.1`, `1.0`).
fn level_text(level: f64) -> String {
    format!("{level:?}")
}

/// Width of the legend column right of the line plot.
const LEGEND_WIDTH: u32 = 130;

/// 0..top with a little room above the highest value; a flat zero series still gets an axis.
fn y_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let top = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    0.0..if top > 0.0 { top * 1.08 } else { 1.0 }
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: PlotLabels<'_>,
    series: &[LevelSeries],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    // The legend gets its own column: inside the chart it would hide the lines.
    let (chart_area, legend_area) = root.split_horizontally(PLOT_SIZE.0 - LEGEND_WIDTH);
    let summaries: Vec<Option<LevelSummary>> = series
        .iter()
        .map(|s| LevelSummary::new(s.drift_level, &s.kls))
        .collect();
    let band = |s: &LevelSummary| {
        let half = 1.96 * s.sd.unwrap_or(0.0);
        ((s.mean - half).max(0.0), s.mean + half)
    };
    let batches = series.iter().map(|s| s.kls.len()).max().unwrap_or(0);
    let x_end = batches.saturating_sub(1).max(1) as f64;
    // Right of the last batch, one bar per level (mean ± 1.96 sd), side by side: ten
    // overlapping shaded bands read as one wash.
    let pad = (0.12 * x_end).max(1.0);
    let bar_x = |index: usize| {
        let spread = if series.len() > 1 {
            index as f64 / (series.len() - 1) as f64
        } else {
            0.5
        };
        x_end + pad * (0.2 + 0.7 * spread)
    };
    let y = y_range(
        series
            .iter()
            .flat_map(|s| s.kls.iter().copied())
            .chain(summaries.iter().flatten().map(|s| band(s).1)),
    );
    let title = format!(
        "KL divergence per batch: {} (batch {})",
        labels.transforms, labels.batch_size
    );
    let chart_area = titled(&chart_area, &title, labels)?;
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end + pad, y)?;
    chart
        .configure_mesh()
        .x_desc("batch index")
        .y_desc("KL(drifted || clean)")
        .x_labels((x_end as usize + 1).min(11))
        .x_label_formatter(&|x| {
            // Batches are whole numbers; skip any in-between tick plotters picks, and the
            // bars' zone right of the last batch.
            if (x - x.round()).abs() < 1e-9 && *x <= x_end {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let partial = labels.partial_last_batch();
    for (index, (level, summary)) in series.iter().zip(&summaries).enumerate() {
        let color = level_color(index, series.len());
        let points = level.kls.iter().enumerate().map(|(b, &k)| (b as f64, k));
        chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
        if let (Some(_), Some(&last)) = (partial, level.kls.last()) {
            let x = (level.kls.len() - 1) as f64;
            chart.draw_series(std::iter::once(Circle::new(
                (x, last),
                5,
                color.stroke_width(2),
            )))?;
        }
        if let Some(summary) = summary {
            let (low, high) = band(summary);
            let x = bar_x(index);
            let tick = pad * 0.03;
            chart.draw_series([
                PathElement::new(vec![(x, low), (x, high)], color.stroke_width(2)),
                PathElement::new(
                    vec![(x - tick, summary.mean), (x + tick, summary.mean)],
                    color.stroke_width(3),
                ),
            ])?;
        }
    }
    // Highest level on top, as the lines usually lie.
    legend_area.draw(&Text::new("drift level", (10, 60), (FONT, 16).into_font()))?;
    for (row, (index, level)) in series.iter().enumerate().rev().enumerate() {
        let y = 90 + 24 * row as i32;
        let color = level_color(index, series.len());
        legend_area.draw(&PathElement::new(
            vec![(10, y), (38, y)],
            color.stroke_width(3),
        ))?;
        legend_area.draw(&Text::new(
            level_text(level.drift_level),
            (46, y - 8),
            (FONT, 15).into_font(),
        ))?;
    }
    let mut y = 100 + 24 * series.len() as i32;
    for line in ["bars at right:", "mean ± 1.96 sd"] {
        legend_area.draw(&Text::new(line, (10, y), (FONT, 13).into_font()))?;
        y += 18;
    }
    if let Some(last) = partial {
        y += 10;
        legend_area.draw(&Circle::new((16, y + 7), 5, BLACK.stroke_width(2)))?;
        for line in [
            "last batch:".to_owned(),
            format!("{last} of {} images", labels.batch_size),
        ] {
            legend_area.draw(&Text::new(line, (28, y), (FONT, 13).into_font()))?;
            y += 18;
        }
    }
    Ok(())
}

fn draw_boxes<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: PlotLabels<'_>,
    series: &[LevelSeries],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let count = series.len();
    let y = y_range(series.iter().flat_map(|s| s.kls.iter().copied()));
    let level_names: Vec<String> = series.iter().map(|s| level_text(s.drift_level)).collect();
    let title = format!(
        "KL divergence by drift level: {} (batch {})",
        labels.transforms, labels.batch_size
    );
    let area = titled(root, &title, labels)?;
    let mut chart = ChartBuilder::on(&area)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..count as f64 - 0.5, y)?;
    chart
        .configure_mesh()
        .x_desc("drift level")
        .y_desc("KL(drifted || clean) per batch")
        .x_labels(count.max(1))
        .x_label_formatter(&|x| {
            let nearest = x.round();
            match level_names.get(nearest as usize) {
                Some(name) if (x - nearest).abs() < 1e-6 && nearest >= 0.0 => name.clone(),
                _ => String::new(),
            }
        })
        .disable_x_mesh()
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (index, level) in series.iter().enumerate() {
        let Some(summary) = LevelSummary::new(level.drift_level, &level.kls) else {
            continue;
        };
        let color = level_color(index, count);
        let x = index as f64;
        let iqr = summary.p75 - summary.p25;
        let mut sorted = level.kls.clone();
        sorted.sort_by(f64::total_cmp);
        let low_whisker = sorted
            .iter()
            .copied()
            .find(|&k| k >= summary.p25 - 1.5 * iqr)
            .unwrap_or(summary.p25);
        let high_whisker = sorted
            .iter()
            .rev()
            .copied()
            .find(|&k| k <= summary.p75 + 1.5 * iqr)
            .unwrap_or(summary.p75);
        let line = BLACK.mix(0.8).stroke_width(1);
        chart.draw_series([
            PathElement::new(vec![(x, low_whisker), (x, summary.p25)], line),
            PathElement::new(vec![(x, summary.p75), (x, high_whisker)], line),
            PathElement::new(vec![(x - 0.12, low_whisker), (x + 0.12, low_whisker)], line),
            PathElement::new(
                vec![(x - 0.12, high_whisker), (x + 0.12, high_whisker)],
                line,
            ),
        ])?;
        chart.draw_series([
            Rectangle::new(
                [(x - 0.3, summary.p25), (x + 0.3, summary.p75)],
                color.mix(0.45).filled(),
            ),
            Rectangle::new([(x - 0.3, summary.p25), (x + 0.3, summary.p75)], line),
        ])?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x - 0.3, summary.median), (x + 0.3, summary.median)],
            BLACK.stroke_width(2),
        )))?;
        chart.draw_series(
            sorted
                .iter()
                .filter(|&&k| k < low_whisker || k > high_whisker)
                .map(|&k| Circle::new((x, k), 3, BLACK.mix(0.7))),
        )?;
    }
    Ok(())
}

/// Colours of the transforms' levels and of the classes, in order.
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(230, 120, 20),
    RGBColor(40, 160, 60),
    RGBColor(200, 40, 40),
    RGBColor(140, 80, 190),
    RGBColor(20, 170, 180),
    RGBColor(190, 150, 20),
    RGBColor(230, 90, 170),
    RGBColor(110, 110, 110),
];

/// A detector's decisions over a stream, for the timeline: its statistic at each decision (a
/// window's last sample, or every sample of an online detector), the threshold it was
/// compared with when that is on the statistic's scale, and where it raised alarms.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorTrace {
    /// The detector's name.
    pub name: String,
    /// (sample_id, statistic, threshold) at each decision, in stream order.
    pub decisions: Vec<(u64, f64, Option<f64>)>,
    /// The sample ids of its alarms.
    pub alarms: Vec<u64>,
}

/// Height of one detector's panel under the timeline.
const TRACE_HEIGHT: u32 = 190;

/// A drift log over time: the drift probability p, the drifted fraction over a sliding window
/// of `window` samples, and each transform's level on each drifted sample (one colour per
/// transform), with the segments marked; with `class_mix`, a panel below with each class's
/// share over the same window (label shift), the 7 largest classes and the rest as `other`;
/// under those, a panel per detector in `traces` (its statistic, threshold and alarms on the
/// same sample axis), each making the plot taller.
pub fn timeline_plot(
    title: &str,
    points: &[LoggedSample],
    window: usize,
    class_mix: bool,
    traces: &[DetectorTrace],
) -> Result<Plot, MeasureError> {
    let mut transforms: Vec<&str> = Vec::new();
    for point in points {
        for (name, _) in &point.levels {
            if !transforms.contains(&name.as_str()) {
                transforms.push(name);
            }
        }
    }
    let classes = if class_mix {
        largest_classes(points, PALETTE.len() - 1)
    } else {
        Vec::new()
    };
    let height = PLOT_SIZE.1 + TRACE_HEIGHT * traces.len() as u32;
    render_sized(
        &Timeline {
            title,
            points,
            window: window.max(1),
            transforms,
            classes,
            class_mix,
            traces,
        },
        (PLOT_SIZE.0, height),
    )
}

/// The `keep` most frequent classes (ties by name).
fn largest_classes(points: &[LoggedSample], keep: usize) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for point in points {
        if let Some(class) = &point.class_name {
            *counts.entry(class).or_default() += 1;
        }
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    counts
        .into_iter()
        .take(keep)
        .map(|(name, _)| name.to_owned())
        .collect()
}

struct Timeline<'a> {
    title: &'a str,
    points: &'a [LoggedSample],
    window: usize,
    transforms: Vec<&'a str>,
    classes: Vec<String>,
    class_mix: bool,
    traces: &'a [DetectorTrace],
}

impl Timeline<'_> {
    /// One detector's panel: its statistic (a line, dots where decisions are sparse), its
    /// threshold (dashed), its alarms as red ticks along the bottom, the segments marked.
    fn draw_trace<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        trace: &DetectorTrace,
    ) -> DrawResult<DB> {
        // Only what falls on the plotted samples (a report may cover more of the stream).
        let x = self.x_range();
        let shown = |id: u64| x.contains(&(id as f64)) || id as f64 == x.end;
        let decisions: Vec<&(u64, f64, Option<f64>)> =
            trace.decisions.iter().filter(|d| shown(d.0)).collect();
        let alarms: Vec<u64> = trace
            .alarms
            .iter()
            .copied()
            .filter(|&id| shown(id))
            .collect();
        let values = decisions
            .iter()
            .flat_map(|(_, statistic, threshold)| std::iter::once(*statistic).chain(*threshold))
            .filter(|v| v.is_finite());
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (low, high) = if low.is_finite() {
            let pad = ((high - low) * 0.08).max(1e-12);
            (low - pad, high + pad)
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .margin_top(4)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(self.x_range(), low..high)?;
        chart
            .configure_mesh()
            .x_desc("sample_id")
            .y_desc("statistic")
            .y_labels(5)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.2e}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (start, _) in self.segments() {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(start, low), (start, high)],
                BLACK.mix(0.35).stroke_width(1),
            )))?;
        }
        let statistic: Vec<(f64, f64)> = decisions
            .iter()
            .map(|(id, s, _)| (*id as f64, *s))
            .collect();
        chart.draw_series(LineSeries::new(
            statistic.iter().copied(),
            FRACTION_COLOR.stroke_width(1),
        ))?;
        if decisions.len() <= 400 {
            chart.draw_series(
                statistic
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 2, FRACTION_COLOR.filled())),
            )?;
        }
        chart.draw_series(decisions.iter().filter_map(|(id, _, threshold)| {
            threshold.map(|t| Circle::new((*id as f64, t), 1, BLACK.filled()))
        }))?;
        let tick = (high - low) * 0.07;
        chart.draw_series(alarms.iter().map(|&id| {
            PathElement::new(
                vec![(id as f64, low), (id as f64, low + tick)],
                ALARM_COLOR.stroke_width(2),
            )
        }))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{} ({} alarms)", trace.name, alarms.len()),
            (x.start, high - (high - low) * 0.02),
            (FONT, 14).into_font(),
        )))?;
        Ok(())
    }

    /// The x range: first to last sample id (at least one wide).
    fn x_range(&self) -> Range<f64> {
        let first = self.points.first().map_or(0, |p| p.sample_id) as f64;
        let last = self
            .points
            .last()
            .map_or(1, |p| p.sample_id)
            .max(first as u64 + 1) as f64;
        first..last
    }

    /// `share(window)` at the middle of each sliding window of the points.
    fn windowed(&self, share: impl Fn(&[LoggedSample]) -> f64) -> Vec<(f64, f64)> {
        self.points
            .windows(self.window.min(self.points.len()).max(1))
            .map(|w| (w[w.len() / 2].sample_id as f64, share(w)))
            .collect()
    }

    /// Each segment's first sample id and name, in order.
    fn segments(&self) -> Vec<(f64, &str)> {
        let mut starts: Vec<(f64, &str)> = Vec::new();
        for point in self.points {
            if starts.last().is_none_or(|(_, name)| *name != point.segment) {
                starts.push((point.sample_id as f64, &point.segment));
            }
        }
        starts
    }

    fn draw_drift<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let x = self.x_range();
        let mut chart = ChartBuilder::on(area)
            .caption(self.title, (FONT, 26))
            .margin(16)
            .x_label_area_size(if self.class_mix { 30 } else { 50 })
            .y_label_area_size(60)
            .build_cartesian_2d(x.clone(), 0.0..1.12)?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc("probability, fraction, level")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .light_line_style(WHITE.mix(0.0));
        if !self.class_mix {
            mesh.x_desc("sample_id");
        }
        mesh.draw()?;
        // Every boundary line first, then the names on top, just right of their line, on
        // alternating heights: a long name then never hides under the next boundary.
        let segments = self.segments();
        for (start, _) in &segments {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(*start, 0.0), (*start, 1.12)],
                BLACK.mix(0.35).stroke_width(1),
            )))?;
        }
        let nudge = (x.end - x.start) * 0.004;
        for (index, (start, name)) in segments.iter().enumerate() {
            let y = if index % 2 == 0 { 1.10 } else { 1.055 };
            chart.draw_series(std::iter::once(Text::new(
                (*name).to_owned(),
                (start + nudge, y),
                (FONT, 14).into_font(),
            )))?;
        }
        for (index, transform) in self.transforms.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            chart.draw_series(self.points.iter().flat_map(|p| {
                p.levels
                    .iter()
                    .filter(|(name, _)| name == transform)
                    .map(|(_, level)| Circle::new((p.sample_id as f64, *level), 2, color.filled()))
            }))?;
        }
        let fraction =
            self.windowed(|w| w.iter().filter(|p| p.drifted).count() as f64 / w.len() as f64);
        chart.draw_series(LineSeries::new(fraction, FRACTION_COLOR.stroke_width(2)))?;
        chart.draw_series(LineSeries::new(
            self.points
                .iter()
                .map(|p| (p.sample_id as f64, p.probability)),
            BLACK.stroke_width(1),
        ))?;
        Ok(())
    }

    fn draw_classes<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .margin_top(4)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(self.x_range(), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("sample_id")
            .y_desc("class share")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (start, _) in self.segments() {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(start, 0.0), (start, 1.0)],
                BLACK.mix(0.35).stroke_width(1),
            )))?;
        }
        for (index, class) in self.class_series() {
            let color = PALETTE[index % PALETTE.len()];
            let share = self.windowed(|w| {
                let count = w
                    .iter()
                    .filter(|p| match (&p.class_name, &class) {
                        (Some(name), Some(class)) => name == class,
                        (name, None) => name.as_ref().is_none_or(|n| !self.classes.contains(n)),
                        (None, Some(_)) => false,
                    })
                    .count();
                count as f64 / w.len() as f64
            });
            chart.draw_series(LineSeries::new(share, color.stroke_width(2)))?;
        }
        Ok(())
    }

    /// The class-mix lines: each kept class, then `other` (`None`) when some are left out.
    fn class_series(&self) -> Vec<(usize, Option<String>)> {
        let mut series: Vec<(usize, Option<String>)> =
            self.classes.iter().cloned().map(Some).enumerate().collect();
        let all_kept = self.points.iter().all(|p| {
            p.class_name
                .as_ref()
                .is_some_and(|n| self.classes.contains(n))
        });
        if !all_kept {
            series.push((self.classes.len(), None));
        }
        series
    }

    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut entries: Vec<(String, RGBColor, bool)> = vec![
            ("p(drifted)".into(), BLACK, false),
            ("drifted fraction".into(), FRACTION_COLOR, false),
        ];
        for (index, transform) in self.transforms.iter().enumerate() {
            entries.push((
                format!("{transform} level"),
                PALETTE[index % PALETTE.len()],
                true,
            ));
        }
        let mut y = 70;
        for (label, color, dot) in &entries {
            draw_entry(area, label, *color, *dot, y)?;
            y += 26;
        }
        area.draw(&Text::new(
            format!("fraction: {} samples", self.window),
            (10, y),
            (FONT, 13).into_font(),
        ))?;
        if self.class_mix {
            y = 430;
            area.draw(&Text::new("class share", (10, y), (FONT, 15).into_font()))?;
            for (index, class) in self.class_series() {
                y += 24;
                let label = class.unwrap_or_else(|| "other".into());
                draw_entry(area, &label, PALETTE[index % PALETTE.len()], false, y)?;
            }
        }
        Ok(())
    }
}

const FRACTION_COLOR: RGBColor = RGBColor(40, 90, 200);
const ALARM_COLOR: RGBColor = RGBColor(210, 30, 30);

/// One legend row: a line or a dot in `color`, then `label`.
pub(crate) fn draw_entry<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &str,
    color: RGBColor,
    dot: bool,
    y: i32,
) -> DrawResult<DB> {
    if dot {
        area.draw(&Circle::new((24, y), 3, color.filled()))?;
    } else {
        area.draw(&PathElement::new(
            vec![(10, y), (38, y)],
            color.stroke_width(3),
        ))?;
    }
    area.draw(&Text::new(
        label.to_owned(),
        (46, y - 8),
        (FONT, 15).into_font(),
    ))?;
    Ok(())
}

impl Figure for Timeline<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (top, traces_area) = root.split_vertically(PLOT_SIZE.1);
        if !self.traces.is_empty() {
            let panels = traces_area.split_evenly((self.traces.len(), 1));
            for (panel, trace) in panels.iter().zip(self.traces) {
                let (chart, _) = panel.split_horizontally(PLOT_SIZE.0 - 190);
                self.draw_trace(&chart, trace)?;
            }
        }
        let (chart_area, legend_area) = top.split_horizontally(PLOT_SIZE.0 - 190);
        if self.class_mix {
            let (drift_area, class_area) = chart_area.split_vertically(420);
            self.draw_drift(&drift_area)?;
            self.draw_classes(&class_area)?;
        } else {
            self.draw_drift(&chart_area)?;
        }
        self.draw_legend(&legend_area)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep() -> Vec<LevelSeries> {
        (1..=4)
            .map(|l| LevelSeries {
                drift_level: f64::from(l) / 10.0,
                kls: (0..7)
                    .map(|b| f64::from(l) * 0.1 + f64::from(b % 3) * 0.01)
                    .chain([f64::from(l) * 0.3])
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn draws_both_plots_in_both_formats() {
        let labels = PlotLabels {
            transforms: "default",
            batch_size: 32,
            images: 8 * 32 - 6,
            context: "dataset demo, test weights, normalize none",
        };
        for plot in [
            line_plot(labels, &sweep()).unwrap(),
            box_plot(labels, &sweep()).unwrap(),
        ] {
            assert_eq!((plot.rgb.size().width, plot.rgb.size().height), PLOT_SIZE);
            // Something other than the white background was drawn, in colour.
            let coloured = plot
                .rgb
                .pixels()
                .chunks_exact(3)
                .filter(|p| p[0] != p[1] || p[1] != p[2])
                .count();
            assert!(coloured > 1000, "{coloured} coloured pixels");
            assert!(plot.svg.starts_with("<svg") && plot.svg.trim_end().ends_with("</svg>"));
            assert!(plot.svg.contains("KL divergence") && plot.svg.contains("default"));
            assert!(
                plot.svg
                    .contains("dataset demo, test weights, normalize none")
            );
        }
        let lines = line_plot(labels, &sweep()).unwrap();
        assert!(
            lines.svg.contains("26 of 32 images"),
            "the partial last batch is marked"
        );
        let lines = line_plot(labels, &sweep()).unwrap();
        assert!(
            lines.svg.lines().any(|line| line.trim() == "0.4"),
            "the legend names each level"
        );
    }

    #[test]
    fn draws_degenerate_sweeps() {
        let labels = PlotLabels {
            transforms: "rotate",
            batch_size: 4,
            images: 4,
            context: "",
        };
        let flat = vec![LevelSeries {
            drift_level: 0.0,
            kls: vec![0.0],
        }];
        line_plot(labels, &flat).unwrap();
        box_plot(labels, &flat).unwrap();
        line_plot(labels, &[]).unwrap();
        box_plot(labels, &[]).unwrap();
    }
}
