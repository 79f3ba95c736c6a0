//! `imagenet_c:jpeg_compression`: ImageNet-C's JPEG corruption (the `imagecorruptions` package): the image
//! saved as a baseline JPEG at a quality (4:2:0 chroma, PIL's defaults) and decoded again.

use drift_core::ImageSize;
use std::cell::RefCell;

use drift_core::RgbImage8;
use turbojpeg::{Compressor, Decompressor, Image, PixelFormat, Subsamp};

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws};
use crate::registry::{ParamColumn, Params, severity_value};

/// JPEG quality at severities 0 to 5; severity 0 is only approached (level 0 is the identity,
/// skipped), so just above 0 the quality is near 100.
const QUALITY: [f64; 6] = [100.0, 25.0, 18.0, 15.0, 10.0, 7.0];

pub(crate) struct JpegCompression;

impl Corruption for JpegCompression {
    fn name(&self) -> &'static str {
        "imagenet_c:jpeg_compression"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C JPEG at severity 5L: quality 100, 25, 18, 15, 10, 7 at severities 0-5 \
         (linear between, rounded), 4:2:0, then decoded"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "quality",
            meaning: "JPEG quality, 1-100",
        }]
    }

    fn differences(&self) -> &'static str {
        "none at severities 1-5 (PIL's codec, libjpeg-turbo, with PIL's settings); between them \
         the quality is interpolated and rounded"
    }

    fn parity(&self) -> &'static str {
        "exact (the same libjpeg-turbo encoder and decoder as PIL)"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &QUALITY).round())
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        jpeg_compression(image, params.value(0) as u8);
    }

    fn corrupt_rgb8(&self, params: &Params, image: &mut RgbImage8, _draws: &mut dyn Draws) -> bool {
        jpeg_round_trip(image, params.value(0) as u8);
        true
    }
}

/// Rounds the image to 8 bits, encodes it as a baseline JPEG at `quality` (1-100) with 4:2:0
/// chroma subsampling, as PIL's `save(format='JPEG', quality=q)` does, and decodes it again.
pub fn jpeg_compression(image: &mut PlanarImage, quality: u8) {
    let mut rgb = image.to_rgb8();
    jpeg_round_trip(&mut rgb, quality);
    *image = PlanarImage::from_rgb8(&rgb);
}

/// The round trip on 8-bit pixels, in place, with PIL's codec: libjpeg-turbo (TurboJPEG) with
/// the settings PIL leaves at their defaults (baseline, Huffman tables not optimised, the
/// accurate integer DCT, fancy upsampling), so the bytes are PIL's. libjpeg-turbo picks its SIMD
/// at run time, and for these settings every SIMD level gives the bytes of its C code.
fn jpeg_round_trip(image: &mut RgbImage8, quality: u8) {
    let size = image.size();
    let (width, height) = (size.width as usize, size.height as usize);
    // One compressor and decompressor per thread: each call would otherwise allocate
    // libjpeg's state again.
    thread_local! {
        static CODEC: RefCell<Option<(Compressor, Decompressor)>> = const { RefCell::new(None) };
    }
    CODEC.with_borrow_mut(|codec| {
        let (compressor, decompressor) = match codec {
            Some(codec) => codec,
            None => codec.insert((
                Compressor::new().expect("TurboJPEG allocates a compressor"),
                Decompressor::new().expect("TurboJPEG allocates a decompressor"),
            )),
        };
        compressor
            .set_quality(i32::from(quality.clamp(1, 100)))
            .expect("a quality of 1-100");
        compressor
            .set_subsamp(Subsamp::Sub2x2)
            .expect("4:2:0 is a TurboJPEG subsampling");
        let source = Image {
            pixels: image.pixels(),
            width,
            pitch: 3 * width,
            height,
            format: PixelFormat::RGB,
        };
        // Sides are at most ImageSize::MAX_SIDE, far under JPEG's 65535.
        let encoded = compressor
            .compress_to_vec(source)
            .expect("an in-memory JPEG of at most 8192x8192 encodes");
        let target = Image {
            pixels: image.pixels_mut(),
            width,
            pitch: 3 * width,
            height,
            format: PixelFormat::RGB,
        };
        decompressor
            .decompress(&encoded, target)
            .expect("our own baseline JPEG decodes to its size");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Set in the child processes of `every_simd_level_gives_the_same_bytes`.
    const CHILD: &str = "DRIFT_JPEG_SIMD_CHILD";

    /// A digest (FNV-1a) of round trips of a smooth and a noisy image, an odd and a whole
    /// number of blocks, at the package's qualities and between.
    fn round_trips_digest() -> u64 {
        let mut digest = 0xcbf2_9ce4_8422_2325u64;
        for (w, h) in [(37usize, 29usize), (224, 224)] {
            let size = ImageSize::new(w as u32, h as u32).unwrap();
            let pixels: Vec<u8> = (0..w * h * 3)
                .map(|i| {
                    let (x, y) = (i / 3 % w, i / 3 / w);
                    let noise = ((i as u32).wrapping_mul(2_654_435_761) >> 27) as usize;
                    ((x * 3 + y * 2 + i % 3 * 60 + noise) % 256) as u8
                })
                .collect();
            for quality in [7, 25, 63, 100] {
                let mut image = RgbImage8::from_pixels(size, pixels.clone()).unwrap();
                jpeg_round_trip(&mut image, quality);
                for &byte in image.pixels() {
                    digest = (digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        digest
    }

    /// libjpeg-turbo chooses its SIMD (none, SSE2, AVX2) once per process, from the CPU and
    /// its `JSIMD_FORCE*` variables: this test runs itself again in a process per level and
    /// compares the bytes, so outputs do not depend on the CPU.
    #[test]
    fn every_simd_level_gives_the_same_bytes() {
        let ours = format!("{:016x}", round_trips_digest());
        if std::env::var_os(CHILD).is_some() {
            println!("digest {ours}");
            return;
        }
        let name = format!(
            "{}::every_simd_level_gives_the_same_bytes",
            module_path!().split_once("::").unwrap().1
        );
        for force in ["JSIMD_FORCENONE", "JSIMD_FORCESSE2", "JSIMD_FORCEAVX2"] {
            let output = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", &name, "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .env(force, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let digest = stdout
                .lines()
                // The test harness prints the test's name on the same line.
                .find_map(|line| line.split_once("digest ").map(|(_, digest)| digest.trim()))
                .unwrap_or_else(|| panic!("{force}: the child printed no digest: {stdout}"));
            assert_eq!(digest, ours, "{force} against the CPU's own choice");
        }
    }
}
