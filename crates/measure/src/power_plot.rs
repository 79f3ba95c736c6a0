//! The plots of a detector benchmark (`drift-pipeline score`): power over drift level (one
//! panel per transform list, a line per detector with its confidence band, the level 0 point
//! being the size on clean windows, alpha dashed), detection delay over drift level (the same
//! panels, each detector's median delay over the detected episodes with its range), delay
//! against false-alarm rate (a point per detector), and the calibration of p-values on clean
//! windows (their quantiles against the uniform's).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::MeasureError;
use crate::plot::{DrawResult, FONT, Figure, PALETTE, Plot, draw_entry, render};

/// One detector's value at each level of one transform list (power, or delay).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelLine {
    /// The detector.
    pub detector: String,
    /// (level, value, band low, band high), by level.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// One transform list's lines.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelPanel {
    /// The transform list.
    pub transforms: String,
    /// A line per detector.
    pub lines: Vec<LevelLine>,
}

/// Power by level, a panel per transform list (at most 3 across), the bands at `confidence`,
/// `alpha` as a dashed line.
pub fn power_plot(
    panels: &[LevelPanel],
    alpha: f64,
    confidence: f64,
) -> Result<Plot, MeasureError> {
    render(&Power {
        panels,
        measure: Measure::Power { alpha, confidence },
    })
}

/// Detection delay by level, a panel per transform list: per detector the median delay (in
/// samples) of its detected episodes at each level, the band from the shortest to the longest,
/// `max_delay` (the longest delay that counts) dashed.
pub fn delay_plot(panels: &[LevelPanel], max_delay: f64) -> Result<Plot, MeasureError> {
    render(&Power {
        panels,
        measure: Measure::Delay { max_delay },
    })
}

/// What a level plot shows.
#[derive(Clone, Copy)]
enum Measure {
    Power { alpha: f64, confidence: f64 },
    Delay { max_delay: f64 },
}

struct Power<'a> {
    panels: &'a [LevelPanel],
    measure: Measure,
}

const LEGEND_WIDTH: u32 = 220;

impl Power<'_> {
    fn detectors(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for line in self.panels.iter().flat_map(|p| &p.lines) {
            if !names.contains(&line.detector.as_str()) {
                names.push(&line.detector);
            }
        }
        names
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &LevelPanel,
        detectors: &[&str],
    ) -> DrawResult<DB> {
        let top = panel
            .lines
            .iter()
            .flat_map(|l| &l.points)
            .map(|p| p.0)
            .fold(1.0f64, f64::max);
        let (y_top, y_desc, dashed) = match self.measure {
            Measure::Power { alpha, .. } => (1.05, "power (alarm share)", alpha),
            Measure::Delay { max_delay } => {
                let longest = panel
                    .lines
                    .iter()
                    .flat_map(|l| &l.points)
                    .map(|p| p.3)
                    .fold(max_delay, f64::max);
                (longest.max(1.0) * 1.05, "delay (samples)", max_delay)
            }
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.transforms, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..top, 0.0..y_top)?;
        chart
            .configure_mesh()
            .x_desc("drift level")
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            [(0.0, dashed), (top, dashed)],
            6,
            4,
            BLACK.mix(0.6).stroke_width(1),
        ))?;
        for line in &panel.lines {
            let index = detectors
                .iter()
                .position(|d| *d == line.detector)
                .unwrap_or(0);
            let color = PALETTE[index % PALETTE.len()];
            let band: Vec<(f64, f64)> = line
                .points
                .iter()
                .map(|p| (p.0, p.3))
                .chain(line.points.iter().rev().map(|p| (p.0, p.2)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(
                band,
                color.mix(0.15).filled(),
            )))?;
            chart.draw_series(LineSeries::new(
                line.points.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))?;
            chart.draw_series(
                line.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
            )?;
        }
        Ok(())
    }
}

impl Figure for Power<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let title = match self.measure {
            Measure::Power { confidence, .. } => format!(
                "Power by drift level (share of drifted windows with an alarm; {:.0}% Clopper-Pearson bands; level 0: clean windows)",
                confidence * 100.0
            ),
            Measure::Delay { .. } => "Detection delay by drift level (median over detected episodes; band: shortest to longest)".to_owned(),
        };
        let below = root.titled(&title, (FONT, 18))?;
        let (charts, legend) = below.split_horizontally(crate::PLOT_SIZE.0 - LEGEND_WIDTH);
        let detectors = self.detectors();
        if self.panels.is_empty() {
            let empty = match self.measure {
                Measure::Power { .. } => {
                    "no drifted windows to plot: give windows (detect reports or --windows) on a drifted stream"
                }
                Measure::Delay { .. } => "no detected episode with a drift level to plot",
            };
            charts.draw(&Text::new(empty, (40, 200), (FONT, 16).into_font()))?;
        } else {
            let columns = self.panels.len().min(3);
            let rows = self.panels.len().div_ceil(columns);
            let areas = charts.split_evenly((rows, columns));
            for (panel, area) in self.panels.iter().zip(&areas) {
                self.draw_panel(area, panel, &detectors)?;
            }
        }
        for (index, detector) in detectors.iter().enumerate() {
            draw_entry(
                &legend,
                detector,
                PALETTE[index % PALETTE.len()],
                false,
                40 + 26 * index as i32,
            )?;
        }
        let y = 40 + 26 * detectors.len() as i32;
        legend.draw(&PathElement::new(
            vec![(10, y), (38, y)],
            BLACK.mix(0.6).stroke_width(1),
        ))?;
        let dashed = match self.measure {
            Measure::Power { alpha, .. } => format!("alpha = {alpha}"),
            Measure::Delay { max_delay } => format!("max delay = {max_delay}"),
        };
        legend.draw(&Text::new(dashed, (46, y - 8), (FONT, 15).into_font()))?;
        Ok(())
    }
}

/// The p-values of clean windows against U(0, 1): per detector, its sorted p-values over the
/// uniform quantiles (i - 1/2)/n, with the diagonal a calibrated test follows.
pub fn calibration_plot(series: &[(String, Vec<f64>)]) -> Result<Plot, MeasureError> {
    render(&Calibration { series })
}

struct Calibration<'a> {
    series: &'a [(String, Vec<f64>)],
}

impl Figure for Calibration<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let below = root.titled(
            "p-values on clean windows against U(0, 1) (calibrated: on the diagonal; below it: too many small p-values)",
            (FONT, 18),
        )?;
        let (chart_area, legend) = below.split_horizontally(crate::PLOT_SIZE.0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("uniform quantile")
            .y_desc("p-value")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            6,
            4,
            BLACK.mix(0.6).stroke_width(1),
        ))?;
        for (index, (detector, p_values)) in self.series.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            let mut sorted = p_values.clone();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len() as f64;
            let points: Vec<(f64, f64)> = sorted
                .iter()
                .enumerate()
                .map(|(i, &p)| ((i as f64 + 0.5) / n, p))
                .collect();
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?;
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, color.filled())))?;
            draw_entry(
                &legend,
                &format!("{detector} ({} windows)", p_values.len()),
                color,
                false,
                40 + 26 * index as i32,
            )?;
        }
        if self.series.is_empty() {
            chart_area.draw(&Text::new(
                "no clean windows with p-values",
                (80, 200),
                (FONT, 16).into_font(),
            ))?;
        }
        Ok(())
    }
}

/// Delay against false alarms, a point per detector: its false-alarm rate (per `rate_unit`
/// samples) and its mean delay over detected episodes (detectors that detected nothing or
/// raised no alarm are listed, not drawn). The trade-off of a detector's configurations.
pub fn delay_far_plot(points: &[(String, f64, f64)], rate_unit: f64) -> Result<Plot, MeasureError> {
    render(&DelayFar { points, rate_unit })
}

struct DelayFar<'a> {
    points: &'a [(String, f64, f64)],
    rate_unit: f64,
}

impl Figure for DelayFar<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let below = root.titled(
            "Mean detection delay against false-alarm rate (a point per detector)",
            (FONT, 18),
        )?;
        let (chart_area, legend) = below.split_horizontally(crate::PLOT_SIZE.0 - LEGEND_WIDTH);
        let drawn: Vec<(usize, &(String, f64, f64))> = self
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.1.is_finite() && p.2.is_finite())
            .collect();
        let x_top = drawn.iter().map(|(_, p)| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
        let y_top = drawn.iter().map(|(_, p)| p.2).fold(0.0, f64::max).max(1.0) * 1.1;
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_top, 0.0..y_top)?;
        chart
            .configure_mesh()
            .x_desc(format!("false alarms per {} samples", self.rate_unit))
            .y_desc("mean delay (samples)")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (index, (_, far, delay)) in &drawn {
            let color = PALETTE[index % PALETTE.len()];
            chart.draw_series(std::iter::once(Circle::new(
                (*far, *delay),
                6,
                color.filled(),
            )))?;
        }
        for (index, (name, far, delay)) in self.points.iter().enumerate() {
            let label = if far.is_finite() && delay.is_finite() {
                name.clone()
            } else {
                format!("{name} (not drawn)")
            };
            draw_entry(
                &legend,
                &label,
                PALETTE[index % PALETTE.len()],
                true,
                40 + 26 * index as i32,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_panels_and_the_empty_case() {
        let line = |detector: &str, shift: f64| LevelLine {
            detector: detector.into(),
            points: (0..=5)
                .map(|i| {
                    let level = f64::from(i) / 5.0;
                    let power = (level + shift).min(1.0);
                    (level, power, (power - 0.1).max(0.0), (power + 0.1).min(1.0))
                })
                .collect(),
        };
        let panels: Vec<LevelPanel> = ["rotate", "gaussian_noise", "hue", "contrast"]
            .iter()
            .map(|t| LevelPanel {
                transforms: (*t).into(),
                lines: vec![line("mmd", 0.2), line("ks", 0.0)],
            })
            .collect();
        let plot = power_plot(&panels, 0.05, 0.95).unwrap();
        assert!(plot.svg.contains("gaussian_noise") && plot.svg.contains("alpha = 0.05"));
        // Something besides white was drawn in the bitmap's charts.
        let pixels = plot.rgb.pixels();
        assert!(pixels.chunks(3).filter(|p| p != &[255, 255, 255]).count() > 10_000);
        let empty = power_plot(&[], 0.05, 0.95).unwrap();
        assert!(empty.svg.contains("no drifted windows"));
    }

    #[test]
    fn draws_the_calibration_plot() {
        let uniform: Vec<f64> = (0..40).map(|i| (f64::from(i) + 0.5) / 40.0).collect();
        let small: Vec<f64> = uniform.iter().map(|p| p * p).collect();
        let plot = calibration_plot(&[("mmd".into(), uniform), ("ks".into(), small)]).unwrap();
        assert!(plot.svg.contains("mmd (40 windows)") && plot.svg.contains("ks (40 windows)"));
        let pixels = plot.rgb.pixels();
        assert!(pixels.chunks(3).filter(|p| p != &[255, 255, 255]).count() > 5_000);
        assert!(
            calibration_plot(&[])
                .unwrap()
                .svg
                .contains("no clean windows")
        );
    }
}
