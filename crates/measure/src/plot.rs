//! The two plots of a sweep, drawn once for a bitmap and once for SVG: batch KL per drift level
//! over batch index (a line each, with a mean ± 1.96 sd band), and one box per drift level.

use std::ops::Range;
use std::sync::Once;

use drift_core::{ImageSize, RgbImage8};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::MeasureError;
use crate::stats::LevelSummary;

/// Plot size in pixels (and SVG user units).
pub const PLOT_SIZE: (u32, u32) = (1100, 650);

const FONT: &str = "sans-serif";

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

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A plot that can be drawn on any plotters backend.
trait Figure {
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
fn render(figure: &impl Figure) -> Result<Plot, MeasureError> {
    register_font();
    let (width, height) = PLOT_SIZE;
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, PLOT_SIZE).into_drawing_area();
        figure.draw(&root).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area();
        figure.draw(&root).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    let size = ImageSize::new(width, height).expect("the plot size is valid");
    let rgb = RgbImage8::from_pixels(size, pixels).expect("the buffer matches the size");
    Ok(Plot { rgb, svg })
}

fn plot_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> MeasureError {
    MeasureError::Plot(error.to_string())
}

/// plotters draws text with ab_glyph from fonts registered by name: DejaVu Sans, embedded, so
/// plots look the same everywhere and need no system fonts.
fn register_font() {
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
    let y = y_range(
        series
            .iter()
            .flat_map(|s| s.kls.iter().copied())
            .chain(summaries.iter().flatten().map(|s| band(s).1)),
    );
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(
            format!(
                "KL divergence per batch: {} (batch {})",
                labels.transforms, labels.batch_size
            ),
            (FONT, 26),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end, y)?;
    chart
        .configure_mesh()
        .x_desc("batch index")
        .y_desc("KL(drifted || clean)")
        .x_labels((x_end as usize + 1).min(11))
        .x_label_formatter(&|x| {
            // Batches are whole numbers; skip any in-between tick plotters picks.
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (index, (level, summary)) in series.iter().zip(&summaries).enumerate() {
        let color = level_color(index, series.len());
        if let Some(summary) = summary {
            let (low, high) = band(summary);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, low), (x_end, high)],
                color.mix(0.12).filled(),
            )))?;
        }
        let points = level.kls.iter().enumerate().map(|(b, &k)| (b as f64, k));
        chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
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
    legend_area.draw(&Text::new(
        "band: mean",
        (10, 100 + 24 * series.len() as i32),
        (FONT, 13).into_font(),
    ))?;
    legend_area.draw(&Text::new(
        "± 1.96 sd",
        (10, 118 + 24 * series.len() as i32),
        (FONT, 13).into_font(),
    ))?;
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
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "KL divergence by drift level: {} (batch {})",
                labels.transforms, labels.batch_size
            ),
            (FONT, 26),
        )
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
        }
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

/// One sample of a drift log, as the timeline plot needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePoint {
    /// The sample.
    pub sample_id: u64,
    /// Its segment.
    pub segment: String,
    /// Whether it was drifted.
    pub drifted: bool,
    /// The probability it had of being drifted.
    pub probability: f64,
    /// The highest drift level applied to it (`None` when clean).
    pub level: Option<f64>,
}

/// A drift log over time: the drift probability p, the drifted fraction over a sliding window
/// of `window` samples, and the drift level of each drifted sample, with the segments marked.
pub fn timeline_plot(
    title: &str,
    points: &[TimelinePoint],
    window: usize,
) -> Result<Plot, MeasureError> {
    render(&Timeline {
        title,
        points,
        window: window.max(1),
    })
}

struct Timeline<'a> {
    title: &'a str,
    points: &'a [TimelinePoint],
    window: usize,
}

impl Figure for Timeline<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (chart_area, legend_area) = root.split_horizontally(PLOT_SIZE.0 - 190);
        let points = self.points;
        let first = points.first().map_or(0, |p| p.sample_id) as f64;
        let last = points
            .last()
            .map_or(1, |p| p.sample_id)
            .max(first as u64 + 1) as f64;
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(self.title, (FONT, 26))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(first..last, 0.0..1.08)?;
        chart
            .configure_mesh()
            .x_desc("sample_id")
            .y_desc("probability, fraction, level")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        // Segment boundaries and names.
        let mut start = 0;
        for i in 1..=points.len() {
            if i == points.len() || points[i].segment != points[start].segment {
                let x = points[start].sample_id as f64;
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, 1.08)],
                    BLACK.mix(0.35).stroke_width(1),
                )))?;
                chart.draw_series(std::iter::once(Text::new(
                    points[start].segment.clone(),
                    (x, 1.065),
                    (FONT, 14).into_font(),
                )))?;
                start = i;
            }
        }
        let level_color = RGBColor(230, 120, 20);
        chart.draw_series(points.iter().filter_map(|p| {
            p.level
                .map(|l| Circle::new((p.sample_id as f64, l), 2, level_color.filled()))
        }))?;
        let fraction: Vec<(f64, f64)> = points
            .windows(self.window.min(points.len()).max(1))
            .map(|w| {
                let drifted = w.iter().filter(|p| p.drifted).count() as f64;
                (w[w.len() / 2].sample_id as f64, drifted / w.len() as f64)
            })
            .collect();
        let fraction_color = RGBColor(40, 90, 200);
        chart.draw_series(LineSeries::new(fraction, fraction_color.stroke_width(2)))?;
        chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p.sample_id as f64, p.probability)),
            BLACK.stroke_width(1),
        ))?;
        let entries: [(&str, RGBColor, bool); 3] = [
            ("p(drifted)", BLACK, false),
            ("drifted fraction", fraction_color, false),
            ("drift level", level_color, true),
        ];
        for (row, (label, color, dot)) in entries.iter().enumerate() {
            let y = 70 + 26 * row as i32;
            if *dot {
                legend_area.draw(&Circle::new((24, y), 3, color.filled()))?;
            } else {
                legend_area.draw(&PathElement::new(
                    vec![(10, y), (38, y)],
                    color.stroke_width(3),
                ))?;
            }
            legend_area.draw(&Text::new(*label, (46, y - 8), (FONT, 15).into_font()))?;
        }
        legend_area.draw(&Text::new(
            format!("fraction: {} samples", self.window),
            (10, 160),
            (FONT, 13).into_font(),
        ))?;
        Ok(())
    }
}
