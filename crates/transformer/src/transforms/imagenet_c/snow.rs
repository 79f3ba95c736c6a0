//! `imagenet_c:snow`: a layer of flakes (a normal field, zoomed, thresholded, blurred along a
//! drawn angle, rounded to 8 bits) added to the image and to itself turned half a turn, over the
//! image blended towards its brightened grey.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::motion::{kernel, motion_blur_unit_to_bytes, shifts};
use crate::imagenet_c::resample::{Window, zoom_window, zoomed_len};
use crate::imagenet_c::{
    Corruption, Draws, Scale, rounded_unit_byte_lanes, store_values, uniform_one,
};
use crate::planar::to_unit;
use crate::registry::{ParamColumn, Params, severity_value};

/// The field's mean at severities 0 (CCC's row) to 5.
const LOC: [f64; 6] = [0.1, 0.1, 0.2, 0.55, 0.55, 0.55];
/// The field's standard deviation.
const SCALE: [f64; 6] = [0.3; 6];
/// The zoom of the field's centre (the flakes' size).
const ZOOM: [f64; 6] = [3.0, 3.0, 2.0, 4.0, 4.5, 2.5];
/// Field values below the threshold are no flake.
const THRESHOLD: [f64; 6] = [1.0, 0.5, 0.5, 0.9, 0.85, 0.85];
/// The motion blur's radius in pixels.
const RADIUS: [f64; 6] = [10.0, 10.0, 12.0, 12.0, 12.0, 12.0];
/// The motion blur's sigma.
const SIGMA: [f64; 6] = [4.0, 4.0, 4.0, 8.0, 8.0, 12.0];
/// The image's share in its blend with its brightened grey.
const BLEND: [f64; 6] = [1.0, 0.8, 0.7, 0.7, 0.65, 0.55];

/// The flakes' strength: CCC's row at severity 0 still makes flakes, so below severity 1 they
/// also fade by s (a multiplication by 1 from severity 1 up).
const FADE: [f64; 6] = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0];

/// OpenCV's `RGB2GRAY` weights in f32.
const GRAY: [f32; 3] = [0.299, 0.587, 0.114];

pub(crate) struct Snow;

impl Corruption for Snow {
    fn name(&self) -> &'static str {
        "imagenet_c:snow"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C snow at severity 5L: flakes where a N(loc, .3) field zoomed by z passes a \
         threshold t, motion-blurred (radius r, sigma) along an angle ~ U(-135, -45) degrees, over \
         the image blended b : 1 - b with its brightened grey; (loc, z, t, r, sigma, b) = (.1, 3, \
         .5, 10, 4, .8), (.2, 2, .5, 12, 4, .7), (.55, 4, .9, 12, 8, .7), (.55, 4.5, .85, 12, 8, \
         .65), (.55, 2.5, .85, 12, 12, .55) at severities 1-5, CCC's (.1, 3, 1, 10, 4, 1) at 0, \
         where the flakes also fade"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "loc",
                meaning: "the flake field's mean",
            },
            ParamColumn {
                name: "scale",
                meaning: "the flake field's standard deviation",
            },
            ParamColumn {
                name: "zoom",
                meaning: "the field's zoom z, the flakes' size",
            },
            ParamColumn {
                name: "threshold",
                meaning: "field values below t are no flake",
            },
            ParamColumn {
                name: "radius",
                meaning: "the flakes' motion blur radius in pixels",
            },
            ParamColumn {
                name: "sigma",
                meaning: "the flakes' motion blur sigma",
            },
            ParamColumn {
                name: "blend",
                meaning: "the image's share b against its brightened grey",
            },
            ParamColumn {
                name: "fade",
                meaning: "the flakes' strength, s below severity 1",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "level 0 is the identity: CCC's row there (threshold 1, blend 1) still leaves flakes on \
         about 0.1% of pixels, so below severity 1 the flake layer is also scaled by s (the \
         lowest levels give few, faint flakes); the angle is drawn after the field, as in the \
         package, so it is not logged"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws (the grey as OpenCV's vector loop computes it; its scalar tail, at some widths, can differ by an ulp)"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::new(&[
            Some(severity_value(level, &LOC)),
            Some(severity_value(level, &SCALE)),
            Some(severity_value(level, &ZOOM)),
            Some(severity_value(level, &THRESHOLD)),
            Some(severity_value(level, &RADIUS)),
            Some(severity_value(level, &SIGMA)),
            Some(severity_value(level, &BLEND)),
            Some(severity_value(level, &FADE)),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let size = image.size();
        let (blurred, layer_width, blend) = blurred_layer(params, size, draws);
        let [r, g, b] = image.planes_mut();
        pulp::Arch::new().dispatch(AddFlakes {
            planes: [r, g, b],
            width: size.width as usize,
            blurred: &blurred,
            layer_width,
            blend,
        });
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        draws: &mut dyn Draws,
    ) -> bool {
        let size = image.size();
        let (blurred, layer_width, blend) = blurred_layer(params, size, draws);
        pulp::Arch::new().dispatch(AddFlakesToBytes {
            pixels: image.pixels_mut(),
            width: size.width as usize,
            blurred: &blurred,
            layer_width,
            blend,
        });
        true
    }
}

/// The snow layer, drawn, zoomed, thresholded and motion-blurred (the layer's values rounded to
/// bytes, `np.round(L * 255)`, and its row length), and the image's share in its blend with its
/// brightened grey.
fn blurred_layer(params: &Params, size: ImageSize, draws: &mut dyn Draws) -> (Vec<u8>, usize, f64) {
    let [loc, scale, zoom, threshold, radius, sigma, blend, fade] =
        std::array::from_fn(|i| params.value(i));
    let (w, h) = (size.width as usize, size.height as usize);
    // The package draws the whole field and zooms its centre.
    let window = Window::clipped_zoom((w, h), zoom);
    let mut field = vec![0.0; window.width * window.height];
    draws.normal_window(
        loc,
        scale,
        (w, h),
        (
            window.top..window.top + window.height,
            window.left..window.left + window.width,
        ),
        &mut field,
    );
    let layer = flake_layer(&field, window, zoom, threshold, fade);
    let (lw, lh) = layer.shape;
    let width = 2 * radius.ceil() as usize + 1;
    let angle = uniform_one(draws, -135.0, -45.0);
    let blurred = motion_blur_unit_to_bytes(
        &layer.values,
        (lw, lh),
        &kernel(width, sigma),
        &shifts(width, angle, (lw, lh)),
    );
    (blurred, lw, blend)
}

/// `np.round(L * 255).astype(np.uint8) / 255.` of row y of the blurred layer (given as its
/// bytes `np.round(L * 255)`), cut to the image's width.
#[inline(always)]
fn flake_row(blurred: &[u8], layer_width: usize, y: usize, out: &mut [f64]) {
    let layer = &blurred[y * layer_width..][..out.len()];
    for (o, &v) in out.iter_mut().zip(layer) {
        *o = f64::from(v) / 255.0;
    }
}

/// The grey of a pixel, as OpenCV's vector loop computes it.
#[inline(always)]
fn grey_of(red: f32, green: f32, blue: f32) -> f32 {
    blue.mul_add(GRAY[2], red.mul_add(GRAY[0], green * GRAY[1]))
}

/// A value of the snowy image in f64 before it is stored: `c6 x + (1 - c6) max(x, 1.5 grey +
/// 0.5)` in f32 (numpy keeps an f32 array f32 against a Python float), then `+ L +
/// rot90(L, 2)` in f64.
#[inline(always)]
fn snowy(value: f32, grey: f32, (b, rest): (f32, f32), flake: f64, turned: f64) -> f64 {
    let lit = value.max(grey * 1.5 + 0.5);
    let blended = b * value + rest * lit;
    f64::from(blended) + flake + turned
}

/// [`AddFlakes`] on interleaved bytes: each value read as `from_rgb8` reads it, each result
/// rounded as the stored value would be by `to_rgb8`.
struct AddFlakesToBytes<'a> {
    pixels: &'a mut [u8],
    width: usize,
    blurred: &'a [u8],
    layer_width: usize,
    blend: f64,
}

impl pulp::WithSimd for AddFlakesToBytes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let w = self.width;
        let h = self.pixels.len() / (3 * w);
        let weights = (self.blend as f32, (1.0 - self.blend) as f32);
        let (mut here, mut turned) = (vec![0.0; w], vec![0.0; w]);
        for (y, row) in self.pixels.chunks_exact_mut(3 * w).enumerate() {
            flake_row(self.blurred, self.layer_width, y, &mut here);
            // `rot90(L, 2)` at (y, x) is L at (h - 1 - y, w - 1 - x): that row, reversed.
            flake_row(self.blurred, self.layer_width, h - 1 - y, &mut turned);
            turned.reverse();
            for ((pixel, &flake), &turned) in row.chunks_exact_mut(3).zip(&here).zip(&turned) {
                let [red, green, blue] = [0, 1, 2].map(|c| to_unit(pixel[c]));
                let grey = grey_of(red, green, blue);
                for (byte, value) in pixel.iter_mut().zip([red, green, blue]) {
                    *byte = rounded_unit_byte_lanes(snowy(value, grey, weights, flake, turned));
                }
            }
        }
    }
}

struct AddFlakes<'a> {
    planes: [&'a mut [f32]; 3],
    width: usize,
    blurred: &'a [u8],
    layer_width: usize,
    blend: f64,
}

impl pulp::WithSimd for AddFlakes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let w = self.width;
        let [r, g, bl] = self.planes;
        let h = r.len() / w;
        let weights = (self.blend as f32, (1.0 - self.blend) as f32);
        let (mut grey, mut here, mut turned) = (vec![0.0f32; w], vec![0.0; w], vec![0.0; w]);
        let mut row = vec![0.0; w];
        for y in 0..h {
            let at = y * w..(y + 1) * w;
            for (((o, &red), &green), &blue) in grey
                .iter_mut()
                .zip(&r[at.clone()])
                .zip(&g[at.clone()])
                .zip(&bl[at.clone()])
            {
                *o = grey_of(red, green, blue);
            }
            flake_row(self.blurred, self.layer_width, y, &mut here);
            // `rot90(L, 2)` at (y, x) is L at (h - 1 - y, w - 1 - x): that row, reversed.
            flake_row(self.blurred, self.layer_width, h - 1 - y, &mut turned);
            turned.reverse();
            for plane in [&mut *r, &mut *g, &mut *bl] {
                let values = &mut plane[at.clone()];
                for ((((out, &value), &grey), &flake), &turned) in row
                    .iter_mut()
                    .zip(values.iter())
                    .zip(&grey)
                    .zip(&here)
                    .zip(&turned)
                {
                    *out = snowy(value, grey, weights, flake, turned);
                }
                store_values(values, &row, Scale::Unit);
            }
        }
    }
}

struct Layer {
    values: Vec<f64>,
    shape: (usize, usize),
}

/// `clipped_zoom(field, z)` without a crop (the package keeps the larger layer), given the
/// window of the field it zooms, then values below the threshold set to 0,
/// `np.clip(layer, 0, 1)`, and the fade below severity 1.
fn flake_layer(field: &[f64], window: Window, zoom: f64, threshold: f64, fade: f64) -> Layer {
    let shape = (
        zoomed_len(window.width, zoom),
        zoomed_len(window.height, zoom),
    );
    let mut values = vec![0.0; shape.0 * shape.1];
    let whole = Window {
        left: 0,
        top: 0,
        ..window
    };
    zoom_window(field, window.width, whole, zoom, shape, |y, row| {
        for (out, &v) in values[y * shape.0..][..shape.0].iter_mut().zip(row) {
            let v = if v < threshold {
                0.0
            } else {
                v.clamp(0.0, 1.0)
            };
            *out = v * fade;
        }
    });
    Layer { values, shape }
}
