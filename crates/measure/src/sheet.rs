//! A contact sheet: images in a grid, a label over each column and beside each row, so that a
//! user can choose drift levels by looking (`drift-pipeline preview`). The cells are copied
//! pixel for pixel; only the margins hold text.

use drift_core::{ImageSize, RgbImage8};
use plotters::prelude::*;
use plotters::style::text_anchor;

use crate::MeasureError;
use crate::plot::{FONT, plot_error, register_font};

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
/// its left and its cells (all of one size, one per column) in order.
pub fn contact_sheet(
    title: &str,
    column_labels: &[String],
    rows: &[(String, Vec<RgbImage8>)],
) -> Result<(RgbImage8, SheetLayout), MeasureError> {
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
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        let style = (FONT, TEXT).into_font().color(&BLACK);
        let centred = style.pos(text_anchor::Pos::new(
            text_anchor::HPos::Center,
            text_anchor::VPos::Center,
        ));
        root.draw(&Text::new(
            title.to_owned(),
            (SHEET_GAP as i32, (BAND / 2) as i32 - 8),
            (FONT, 17).into_font().color(&BLACK),
        ))
        .map_err(plot_error)?;
        for (c, label) in column_labels.iter().enumerate() {
            let (left, top) = layout.cell_origin(0, c as u32);
            let centre = (left + cell.width / 2) as i32;
            root.draw(&Text::new(
                label.clone(),
                (centre, (top - BAND / 2) as i32),
                centred.clone(),
            ))
            .map_err(plot_error)?;
        }
        let left_aligned = style.pos(text_anchor::Pos::new(
            text_anchor::HPos::Left,
            text_anchor::VPos::Center,
        ));
        for (r, (label, _)) in rows.iter().enumerate() {
            let (_, top) = layout.cell_origin(r as u32, 0);
            root.draw(&Text::new(
                label.clone(),
                (SHEET_GAP as i32, (top + cell.height / 2) as i32),
                left_aligned.clone(),
            ))
            .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    let size = ImageSize::new(width, height)
        .map_err(|e| MeasureError::Plot(format!("the sheet is too large: {e}")))?;
    let rgb = RgbImage8::from_pixels(size, pixels).expect("the buffer matches the size");
    Ok((rgb, layout))
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
        let (sheet, layout) = contact_sheet("preview", &labels, &rows).unwrap();
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
        assert!(contact_sheet("t", &labels, &ragged).is_err());
    }
}
