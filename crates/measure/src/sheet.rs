//! A contact sheet: images in a grid, a label over each column and beside each row, so that a
//! user can choose drift levels by looking (`drift-pipeline preview`). In the bitmap the cells
//! are copied pixel for pixel and only the margins hold text; the SVG embeds each cell as an
//! image and the labels as text.

use drift_core::{ImageSize, RgbImage8};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor;

use crate::MeasureError;
use crate::plot::{DrawResult, FONT, Plot, plot_error, register_font};

/// Pixels between cells and around the grid.
pub const SHEET_GAP: u32 = 6;
/// The height of the title band and of the column labels' band.
const BAND: u32 = 30;
/// Label text size in pixels.
const TEXT: u32 = 15;

/// Where the cells of a contact sheet are, for a sheet of `rows` x `columns` cells of
/// `cell` size under row labels `label_width` wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetLayout {
    /// Each cell's size.
    pub cell: ImageSize,
    /// Cells across.
    pub columns: u32,
    /// Cells down.
    pub rows: u32,
    /// The width of the row labels' margin.
    pub label_width: u32,
}

impl SheetLayout {
    /// The top-left pixel of cell (`row`, `column`).
    pub fn cell_origin(&self, row: u32, column: u32) -> (u32, u32) {
        (
            self.label_width + SHEET_GAP + column * (self.cell.width + SHEET_GAP),
            2 * BAND + row * (self.cell.height + SHEET_GAP),
        )
    }

    /// The whole sheet's size.
    pub fn size(&self) -> (u32, u32) {
        let (right, bottom) = self.cell_origin(self.rows, self.columns);
        (right, bottom)
    }
}

/// Draws a contact sheet: `title` on top, `column_labels` over the columns, each row's label on
/// its left and its cells (all of one size, one per column) in order. The bitmap holds the
/// cells' pixels; the SVG holds each cell as an `<image>` whose `href` is `cell_href(cell)` (a
/// `data:` URI of its PNG, say) and the labels as text.
pub fn contact_sheet(
    title: &str,
    column_labels: &[String],
    rows: &[(String, Vec<RgbImage8>)],
    cell_href: &dyn Fn(&RgbImage8) -> String,
) -> Result<(Plot, SheetLayout), MeasureError> {
    let cell = rows
        .first()
        .and_then(|(_, cells)| cells.first())
        .map(RgbImage8::size)
        .ok_or_else(|| MeasureError::Plot("a contact sheet needs at least one cell".into()))?;
    if let Some((label, _)) = rows.iter().find(|(_, cells)| {
        cells.len() != column_labels.len() || cells.iter().any(|c| c.size() != cell)
    }) {
        return Err(MeasureError::Plot(format!(
            "row {label}: every row needs {} cells of {}x{}",
            column_labels.len(),
            cell.width,
            cell.height
        )));
    }
    // About 8.5 px per character at 15 px: room for the longest row label.
    let longest = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let layout = SheetLayout {
        cell,
        columns: column_labels.len() as u32,
        rows: rows.len() as u32,
        label_width: SHEET_GAP + (longest * 17).div_ceil(2),
    };
    let (width, height) = layout.size();
    let size = ImageSize::new(width, height)
        .map_err(|e| MeasureError::Plot(format!("the sheet is too large: {e}")))?;
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    for (r, (_, cells)) in rows.iter().enumerate() {
        for (c, image) in cells.iter().enumerate() {
            let (left, top) = layout.cell_origin(r as u32, c as u32);
            let row_bytes = 3 * cell.width as usize;
            for (y, source) in image.pixels().chunks_exact(row_bytes).enumerate() {
                let at = 3 * ((top as usize + y) * width as usize + left as usize);
                pixels[at..at + row_bytes].copy_from_slice(source);
            }
        }
    }
    register_font();
    let labels = Labels {
        title,
        columns: column_labels,
        rows,
        layout,
    };
    {
        // The buffer already holds the white ground and the cells: only text is drawn on it.
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        labels.draw(&root).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        labels.draw(&root).map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    let mut images = String::new();
    for (r, (_, cells)) in rows.iter().enumerate() {
        for (c, image) in cells.iter().enumerate() {
            let (left, top) = layout.cell_origin(r as u32, c as u32);
            images.push_str(&format!(
                "<image x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{}\" \
                 style=\"image-rendering:pixelated\" href=\"{}\"/>\n",
                cell.width,
                cell.height,
                cell_href(image)
            ));
        }
    }
    let end = svg
        .rfind("</svg>")
        .ok_or_else(|| MeasureError::Plot("the SVG backend wrote no </svg>".into()))?;
    svg.insert_str(end, &images);
    let rgb = RgbImage8::from_pixels(size, pixels).expect("the buffer matches the size");
    Ok((Plot { rgb, svg }, layout))
}

/// A sheet's text: the title, the columns' labels, the rows' labels.
struct Labels<'a> {
    title: &'a str,
    columns: &'a [String],
    rows: &'a [(String, Vec<RgbImage8>)],
    layout: SheetLayout,
}

impl Labels<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let cell = self.layout.cell;
        let style = (FONT, TEXT).into_font().color(&BLACK);
        let centred = style.pos(text_anchor::Pos::new(
            text_anchor::HPos::Center,
            text_anchor::VPos::Center,
        ));
        root.draw(&Text::new(
            self.title.to_owned(),
            (SHEET_GAP as i32, (BAND / 2) as i32 - 8),
            (FONT, 17).into_font().color(&BLACK),
        ))?;
        for (c, label) in self.columns.iter().enumerate() {
            let (left, top) = self.layout.cell_origin(0, c as u32);
            let centre = (left + cell.width / 2) as i32;
            root.draw(&Text::new(
                label.clone(),
                (centre, (top - BAND / 2) as i32),
                centred.clone(),
            ))?;
        }
        let left_aligned = style.pos(text_anchor::Pos::new(
            text_anchor::HPos::Left,
            text_anchor::VPos::Center,
        ));
        for (r, (label, _)) in self.rows.iter().enumerate() {
            let (_, top) = self.layout.cell_origin(r as u32, 0);
            root.draw(&Text::new(
                label.clone(),
                (SHEET_GAP as i32, (top + cell.height / 2) as i32),
                left_aligned.clone(),
            ))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(size: ImageSize, value: u8) -> RgbImage8 {
        RgbImage8::from_pixels(size, vec![value; size.pixel_count() * 3]).unwrap()
    }

    #[test]
    fn cells_are_copied_where_the_layout_puts_them_and_labels_stay_outside() {
        let size = ImageSize::new(20, 10).unwrap();
        let rows = vec![
            (
                "rotate".to_owned(),
                vec![filled(size, 10), filled(size, 20)],
            ),
            (
                "imagenet_c:fog".to_owned(),
                vec![filled(size, 30), filled(size, 40)],
            ),
        ];
        let labels = vec!["original".to_owned(), "0.5".to_owned()];
        let href = |image: &RgbImage8| format!("cell:{}", image.pixels()[0]);
        let (plot, layout) = contact_sheet("preview", &labels, &rows, &href).unwrap();
        let sheet = plot.rgb;
        // The SVG places each cell at the bitmap's position, and writes the labels as text.
        let (left, top) = layout.cell_origin(1, 1);
        assert!(
            plot.svg.contains(&format!(
                "<image x=\"{left}\" y=\"{top}\" width=\"20\" height=\"10\""
            )) && plot.svg.contains("href=\"cell:40\""),
            "{}",
            plot.svg
        );
        assert!(plot.svg.contains("imagenet_c:fog") && plot.svg.trim_end().ends_with("</svg>"));
        let (width, height) = layout.size();
        assert_eq!((sheet.size().width, sheet.size().height), (width, height));
        for (r, (_, cells)) in rows.iter().enumerate() {
            for (c, cell) in cells.iter().enumerate() {
                let (left, top) = layout.cell_origin(r as u32, c as u32);
                for y in 0..10 {
                    let at = 3 * ((top + y) * width + left) as usize;
                    assert_eq!(&sheet.pixels()[at..at + 60], &cell.pixels()[..60]);
                }
            }
        }
        // Some text was drawn in the margins (dark pixels left of the first column).
        let (grid_left, _) = layout.cell_origin(0, 0);
        let dark = (0..height)
            .flat_map(|y| (0..grid_left - SHEET_GAP).map(move |x| (y, x)))
            .filter(|&(y, x)| sheet.pixels()[3 * (y * width + x) as usize] < 128)
            .count();
        assert!(dark > 20, "row labels drawn: {dark} dark pixels");
        let ragged = vec![("a".to_owned(), vec![filled(size, 1)])];
        assert!(contact_sheet("t", &labels, &ragged, &href).is_err());
    }
}
