//! `imagenet_c:frost`: a crop of one of the package's five frost photographs, resized to cover
//! the image by 1.1 times (OpenCV's bicubic), blended in: `a x + b frost`.
//!
//! The textures are the package's (`crates/transformer/assets/frost/`, with its Apache-2.0
//! licence), decoded as OpenCV decodes them and embedded losslessly: 2.2 MB of PNG in the
//! binary, decoded once per process when first used. A resized texture depends only on the
//! image size, so the last few are kept: a dataset of one size resizes each texture once.

use std::sync::{Arc, Mutex, OnceLock};

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::cubic::resize_cubic;
use crate::imagenet_c::{Corruption, Draws, Kept, Scale, Unit, kept, rounded_byte, store_values};
use crate::registry::{ParamColumn, Params, severity_value};

/// The image's weight a at severities 0 (identity) to 5.
const IMAGE_WEIGHT: [f64; 6] = [1.0, 1.0, 0.8, 0.7, 0.65, 0.6];
/// The frost's weight b.
const FROST_WEIGHT: [f64; 6] = [0.0, 0.4, 0.6, 0.7, 0.7, 0.75];

/// The package's `frost1.png` .. `frost5.jpg` as RGB PNG (tools/golden/make_frost_textures.py).
/// `frost3.png` holds the same pixels as `frost2.png`, so one file serves both; `frost6.jpg` is
/// never chosen by the package (`randint(5)`), so it is not shipped.
const TEXTURES: [&[u8]; 5] = [
    include_bytes!("../../../assets/frost/frost1.png"),
    include_bytes!("../../../assets/frost/frost2.png"),
    include_bytes!("../../../assets/frost/frost2.png"),
    include_bytes!("../../../assets/frost/frost4.png"),
    include_bytes!("../../../assets/frost/frost5.png"),
];

pub(crate) struct Frost;

impl Corruption for Frost {
    fn name(&self) -> &'static str {
        "imagenet_c:frost"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C frost at severity 5L: a x + b frost, the frost a random crop of one of five \
         frost photographs (texture ~ U{1..5}) resized bicubically to 1.1 times the cover of the \
         image; (a, b) = (1, 0), (1, .4), (.8, .6), (.7, .7), (.65, .7), (.6, .75) at \
         severities 0-5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "image_weight",
                meaning: "the image's weight a",
            },
            ParamColumn {
                name: "frost_weight",
                meaning: "the frost's weight b",
            },
            ParamColumn {
                name: "texture",
                meaning: "which frost photograph, 1-5",
            },
            ParamColumn {
                name: "top",
                meaning: "the crop's first row in the resized texture",
            },
            ParamColumn {
                name: "left",
                meaning: "the crop's first column in the resized texture",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "none beyond the resize: the package runs OpenCV's bicubic through Intel's IPP, whose \
         sums are its own; ours are OpenCV's weights summed in f64 (about 1e-4 of the texture's \
         bytes one level off)"
    }

    fn parity(&self) -> &'static str {
        "within one level given numpy's draws, on a few pixels in 10^4 (the resize)"
    }

    fn params(&self, level: f64, size: ImageSize, draws: &mut dyn Draws) -> Params {
        let mut index = [0];
        draws.integers(0, 5, &mut index);
        let texture = index[0] as usize;
        let (width, height) = resized_size(texture_size(texture), size);
        let mut top = [0];
        let mut left = [0];
        // `randint(0, H' - H)`, then `randint(0, W' - W)`: the upper bound is exclusive, and the
        // 1.1 makes both ranges non-empty.
        draws.integers(0, (height - size.height as usize) as i64, &mut top);
        draws.integers(0, (width - size.width as usize) as i64, &mut left);
        Params::new(&[
            Some(severity_value(level, &IMAGE_WEIGHT)),
            Some(severity_value(level, &FROST_WEIGHT)),
            Some(texture as f64 + 1.0),
            Some(top[0] as f64),
            Some(left[0] as f64),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        let size = image.size();
        let (w, h) = (size.width as usize, size.height as usize);
        let (frost, (top, left), (a, b)) = frost_crop(params, size);
        let unit = Unit::of(image);
        let mut row = vec![0.0; w];
        for (channel, plane) in image.data_mut().chunks_exact_mut(w * h).enumerate() {
            for (y, values) in plane.chunks_exact_mut(w).enumerate() {
                let frost_row = frost.row(top + y, left, w).iter().skip(channel).step_by(3);
                for ((out, &x), &f) in row.iter_mut().zip(values.iter()).zip(frost_row) {
                    // `np.clip(a * x + b * frost, 0, 255)`, x and frost bytes, in f64.
                    *out = a * unit.byte(x) + b * f64::from(f);
                }
                store_values(values, &row, Scale::Bytes);
            }
        }
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        _draws: &mut dyn Draws,
    ) -> bool {
        let size = image.size();
        let w = size.width as usize;
        let (frost, (top, left), weights) = frost_crop(params, size);
        let table = blend_table(weights);
        for (y, row) in image.pixels_mut().chunks_exact_mut(3 * w).enumerate() {
            let frost_row = frost.row(top + y, left, w);
            for (value, &f) in row.iter_mut().zip(frost_row) {
                *value = table[usize::from(*value) << 8 | usize::from(f)];
            }
        }
        true
    }
}

/// The byte of `np.clip(a x + b frost, 0, 255)` for every byte x and frost (at `x << 8 |
/// frost`), rounded as the chain rounds: 65,536 blends where a 224-px image has 150,528 values.
/// The weights are the same for every image at one level, so the last few tables are kept.
fn blend_table((a, b): (f64, f64)) -> Arc<[u8]> {
    static TABLES: Kept<(u64, u64), [u8]> = Mutex::new(Vec::new());
    kept(&TABLES, (a.to_bits(), b.to_bits()), 4, || {
        let mut table = vec![0u8; 1 << 16];
        pulp::Arch::new().dispatch(BlendTable {
            table: &mut table,
            weights: (a, b),
        });
        table.into()
    })
}

/// [`blend_table`]'s values, compiled for the widest SIMD the CPU has.
struct BlendTable<'a> {
    table: &'a mut [u8],
    weights: (f64, f64),
}

impl pulp::WithSimd for BlendTable<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (a, b) = self.weights;
        for (x, row) in self.table.chunks_exact_mut(256).enumerate() {
            let image = a * x as f64;
            for (f, out) in row.iter_mut().enumerate() {
                *out = rounded_byte(image + b * f as f64, Scale::Bytes);
            }
        }
    }
}

/// The texture and crop `params` name for an image of `size`: the resized texture, the crop's
/// top and left, the weights a and b.
fn frost_crop(params: &Params, size: ImageSize) -> (Arc<Resized>, (usize, usize), (f64, f64)) {
    let [a, b, texture, top, left] = std::array::from_fn(|i| params.value(i));
    let texture = (texture as usize).clamp(1, TEXTURES.len()) - 1;
    let frost = resized(texture, resized_size(texture_size(texture), size));
    (frost, (top as usize, left as usize), (a, b))
}

/// A resized texture, its pixels interleaved (RGB), as the crop reads them.
struct Resized {
    width: usize,
    rgb: Vec<u8>,
}

impl Resized {
    /// The `len` pixels (3 `len` bytes) of row `y` from column `x`.
    fn row(&self, y: usize, x: usize, len: usize) -> &[u8] {
        &self.rgb[3 * (y * self.width + x)..][..3 * len]
    }
}

/// A texture's pixels as three byte planes.
struct Texture {
    width: usize,
    height: usize,
    /// R, G and B planes, one after the other.
    values: Vec<u8>,
}

/// The embedded texture `index` (0-4), decoded once.
fn texture(index: usize) -> &'static Texture {
    static DECODED: [OnceLock<Texture>; 5] = [const { OnceLock::new() }; 5];
    DECODED[index].get_or_init(|| decode(TEXTURES[index]))
}

/// The width and height of texture `index`, read from its PNG header (the draw needs them;
/// decoding waits for the corruption).
fn texture_size(index: usize) -> (usize, usize) {
    let bytes = TEXTURES[index];
    // The IHDR chunk follows the 8-byte signature and its 8-byte length and type.
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    (word(16), word(20))
}

fn decode(png_bytes: &[u8]) -> Texture {
    // The textures are ours, built with the crate: a decoding failure is a build defect.
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("an embedded frost texture");
    let mut rgb = vec![0; reader.output_buffer_size().expect("a texture's size")];
    let info = reader
        .next_frame(&mut rgb)
        .expect("an embedded frost texture");
    assert_eq!(info.color_type, png::ColorType::Rgb, "an RGB frost texture");
    let (width, height) = (info.width as usize, info.height as usize);
    let n = width * height;
    let mut values = vec![0; 3 * n];
    for (i, pixel) in rgb[..3 * n].chunks_exact(3).enumerate() {
        for (c, &v) in pixel.iter().enumerate() {
            values[c * n + i] = v;
        }
    }
    Texture {
        width,
        height,
        values,
    }
}

/// The package's resize rule: a texture at least the image's size in both sides is scaled by
/// 1.1; otherwise by 1.1 times the larger of the ratios of the sides it is short of (in f64,
/// as Python divides), then `ceil` of each side.
fn resized_size((width, height): (usize, usize), size: ImageSize) -> (usize, usize) {
    let (w, h) = (size.width as f64, size.height as f64);
    let (tw, th) = (width as f64, height as f64);
    let short_h = th < h;
    let short_w = tw < w;
    let factor = match (short_h, short_w) {
        (false, false) => 1.0,
        (true, false) => h / th,
        (false, true) => w / tw,
        (true, true) => (h / th).max(w / tw),
    } * 1.1;
    ((tw * factor).ceil() as usize, (th * factor).ceil() as usize)
}

/// Texture `index` resized to `(width, height)`: from the last few resizes if there, else
/// resized now and kept.
fn resized(index: usize, (width, height): (usize, usize)) -> Arc<Resized> {
    static RESIZED: Kept<(usize, usize, usize), Resized> = Mutex::new(Vec::new());
    kept(&RESIZED, (index, width, height), 10, || {
        let source = texture(index);
        let planes: Vec<Vec<u8>> = source
            .values
            .chunks_exact(source.width * source.height)
            .map(|plane| resize_cubic(plane, (source.width, source.height), (width, height)))
            .collect();
        let rgb = (0..width * height)
            .flat_map(|i| [planes[0][i], planes[1][i], planes[2][i]])
            .collect();
        Arc::new(Resized { width, rgb })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransformKind;
    use drift_core::{Purpose, sample_rng};

    #[test]
    fn textures_and_offsets_are_uniform() {
        // Our own draws through the production seam: the texture uniform over 1-5 and each
        // offset uniform over its range, chi-squared at alpha 1e-4.
        let kind = TransformKind::named("imagenet_c:frost").unwrap();
        let size = ImageSize::new(224, 224).unwrap();
        let n = 20_000;
        let mut textures = [0f64; 5];
        let mut top_tenths = [[0f64; 10]; 5];
        for id in 0..n {
            let mut rng = sample_rng(11, id, Purpose::TransformParams(0));
            let params = kind.draw(0.6, size, &mut rng);
            let texture = params.value(2) as usize;
            let (_, height) = resized_size(texture_size(texture - 1), size);
            let (top, left) = (params.value(3), params.value(4));
            assert!(top >= 0.0 && (top as usize) < height - 224, "{top}");
            assert!(left >= 0.0, "{left}");
            textures[texture - 1] += 1.0;
            top_tenths[texture - 1][(10.0 * top / (height - 224) as f64) as usize] += 1.0;
        }
        let chi2 = |counts: &[f64]| {
            let expected = counts.iter().sum::<f64>() / counts.len() as f64;
            counts
                .iter()
                .map(|c| (c - expected).powi(2) / expected)
                .sum::<f64>()
        };
        assert!(chi2(&textures) < 23.5, "textures {textures:?}");
        for tenths in &top_tenths {
            // 9 degrees of freedom at alpha 1e-4 (the ranges are not multiples of 10: the
            // tenths differ by under one value in 120, far below this bound's reach).
            assert!(chi2(tenths) < 33.7, "{tenths:?}");
        }
    }

    #[test]
    fn resized_sizes_follow_the_package_rule() {
        let small = ImageSize::new(224, 224).unwrap();
        // The brief's sizes at 1.1 (900 x 1.1 is 990.0000000000001: 991).
        assert_eq!(resized_size((900, 600), small), (991, 660));
        assert_eq!(resized_size((560, 315), small), (616, 347));
        assert_eq!(resized_size((527, 350), small), (580, 386));
        assert_eq!(resized_size((660, 495), small), (727, 545));
        let tall = ImageSize::new(300, 700).unwrap();
        let (w, h) = resized_size((560, 315), tall);
        assert!(h > 700 && w > 300, "{w}x{h}");
        for index in 0..5 {
            let decoded = texture(index);
            assert_eq!(
                (decoded.width, decoded.height),
                texture_size(index),
                "frost{}",
                index + 1
            );
        }
    }
}
