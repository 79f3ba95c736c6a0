//! What flows between layers: channels-last feature maps ([`Activations`]), the buffers reused
//! between layers and batches ([`Workspace`]), and what a convolution does to its output
//! besides adding its bias ([`Epilogue`]).

/// A batch of feature maps, `[batch, height, width, channels]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Activations {
    /// `batch * height * width * channels` values.
    pub values: Vec<f32>,
    /// Images.
    pub batch: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
    /// Values per pixel.
    pub channels: usize,
}

impl Activations {
    /// Pixels of one image.
    pub fn pixels_per_image(&self) -> usize {
        self.height * self.width
    }
}

/// Buffers kept between layers and between batches. A fresh buffer costs a page fault per
/// 4 KiB the first time each page is written: for a 25 MB activation that was 40% of a layer1
/// convolution's time (see docs/MEASUREMENTS.md).
#[derive(Debug, Default)]
pub struct Workspace {
    /// Gathered receptive fields, or Winograd's transformed windows and products.
    scratch_values: Vec<f32>,
    spare: Vec<Vec<f32>>,
}

impl Workspace {
    /// The scratch buffer with `len` values (its contents are a previous layer's, or zeros),
    /// grown to exactly `len`: doubling it would keep up to twice the largest need resident.
    pub fn scratch(&mut self, len: usize) -> &mut [f32] {
        let scratch = &mut self.scratch_values;
        if len > scratch.len() {
            scratch.reserve_exact(len - scratch.len());
            scratch.resize(len, 0.0);
        }
        &mut scratch[..len]
    }

    /// A buffer of `len` values, for a caller that overwrites every one of them (its contents
    /// are a previous layer's, or zeros).
    pub fn buffer(&mut self, len: usize) -> Vec<f32> {
        let smallest_fit = (0..self.spare.len())
            .filter(|&i| self.spare[i].capacity() >= len)
            .min_by_key(|&i| self.spare[i].capacity());
        let mut buffer = smallest_fit.map_or_else(Vec::new, |i| self.spare.swap_remove(i));
        if buffer.len() >= len {
            buffer.truncate(len);
        } else {
            buffer.reserve_exact(len - buffer.len());
            buffer.resize(len, 0.0);
        }
        buffer
    }

    /// Keeps `activations`' buffer for a later [`Workspace::buffer`].
    pub fn recycle(&mut self, activations: Activations) {
        self.spare.push(activations.values);
    }

    /// Bytes this workspace holds now (scratch and spare buffers).
    pub fn bytes(&self) -> usize {
        let spare: usize = self.spare.iter().map(Vec::capacity).sum();
        (self.scratch_values.capacity() + spare) * size_of::<f32>()
    }
}

/// What to do with a convolution's output besides adding its bias. Every kernel applies it
/// through [`Epilogue::apply`], so its arithmetic (and so its bits) is the same on every path.
#[derive(Debug, Clone, Copy)]
pub enum Epilogue<'a> {
    /// Nothing more: a shortcut.
    Linear,
    /// max(0, x).
    Relu,
    /// max(0, x + shortcut): the end of a residual block. The shortcut has the output's shape.
    AddRelu(&'a Activations),
}

impl Epilogue<'_> {
    /// Adds `bias` to each row of `rows` (rows of `bias.len()` values; the first value of
    /// `rows` is value `at` of the whole output) and applies the rest. `bias` may be a slice
    /// of the channels (a run of them, as Winograd writes them), with `rows` the same run.
    #[inline(always)]
    pub fn apply(self, rows: &mut [f32], bias: &[f32], at: usize) {
        match self {
            Epilogue::Linear => {
                for row in rows.chunks_exact_mut(bias.len()) {
                    for (d, &b) in row.iter_mut().zip(bias) {
                        *d += b;
                    }
                }
            }
            Epilogue::Relu => {
                for row in rows.chunks_exact_mut(bias.len()) {
                    for (d, &b) in row.iter_mut().zip(bias) {
                        *d = (*d + b).max(0.0);
                    }
                }
            }
            Epilogue::AddRelu(shortcut) => {
                let shortcut = &shortcut.values[at..at + rows.len()];
                for (row, shortcut) in rows
                    .chunks_exact_mut(bias.len())
                    .zip(shortcut.chunks_exact(bias.len()))
                {
                    for ((d, &b), &r) in row.iter_mut().zip(bias).zip(shortcut) {
                        *d = (*d + b + r).max(0.0);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_smallest_fit_first() {
        let mut workspace = Workspace::default();
        let big = workspace.buffer(100);
        let small = workspace.buffer(10);
        let (big_ptr, small_ptr) = (big.as_ptr(), small.as_ptr());
        for values in [big, small] {
            workspace.recycle(Activations {
                values,
                batch: 1,
                height: 1,
                width: 1,
                channels: 1,
            });
        }
        // A need of 8 takes the 10-value buffer, not the 100-value one.
        let reused = workspace.buffer(8);
        assert_eq!(reused.as_ptr(), small_ptr);
        assert_eq!(reused.len(), 8);
        let reused_big = workspace.buffer(60);
        assert_eq!(reused_big.as_ptr(), big_ptr);
        assert_eq!(reused_big.len(), 60);
        // Nothing spare left: a fresh one.
        assert_eq!(workspace.buffer(5).len(), 5);
    }

    #[test]
    fn scratch_grows_to_exactly_what_is_asked() {
        let mut workspace = Workspace::default();
        assert_eq!(workspace.scratch(7).len(), 7);
        assert_eq!(workspace.scratch(3).len(), 3);
        assert!(workspace.bytes() >= 7 * 4);
    }

    #[test]
    fn each_epilogue_does_what_it_says() {
        let shortcut = Activations {
            values: vec![10.0, -10.0, 1.0, -1.0],
            batch: 1,
            height: 1,
            width: 2,
            channels: 2,
        };
        let bias = [1.0, -2.0];
        let apply = |epilogue: Epilogue<'_>, at: usize, mut rows: Vec<f32>| {
            epilogue.apply(&mut rows, &bias, at);
            rows
        };
        assert_eq!(apply(Epilogue::Linear, 0, vec![0.5, 0.5]), [1.5, -1.5]);
        assert_eq!(apply(Epilogue::Relu, 0, vec![0.5, 0.5]), [1.5, 0.0]);
        // The second pixel of the output: the shortcut's values from `at` on.
        assert_eq!(
            apply(Epilogue::AddRelu(&shortcut), 2, vec![0.5, 0.5]),
            [2.5, 0.0]
        );
        assert_eq!(
            apply(Epilogue::AddRelu(&shortcut), 0, vec![0.5, 0.5, 0.0, 4.0]),
            [11.5, 0.0, 2.0, 1.0]
        );
    }
}
