//! `generate --embeddings` on real files: embeddings.parquet read back and checked against the
//! embedder run on the PNGs in the zip, determinism across threads and batch sizes, and every
//! way of getting the weights wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use drift_core::{ImageSize, RgbImage8};
use drift_embedder::{Embedder, EmbedderOptions, StateDict};

type Setup = WeightsSetup;

fn drift_pipeline(args: &[&str], cache: &Path) -> Output {
    drift_pipeline_in(args, Some(cache))
}

fn setup(images_per_class: usize) -> Setup {
    WeightsSetup::new(images_per_class, 3, 7)
}

impl WeightsSetup {
    fn generate(&self, name: &str, extra: &[&str]) -> PathBuf {
        let output = self.scratch.path().join(name);
        let args = [
            &[
                "generate",
                "--input",
                self.input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--num-samples",
                "11",
                "--embeddings",
                "--weights",
                self.weights.to_str().unwrap(),
                "--quiet",
            ],
            extra,
        ]
        .concat();
        self.succeeds(&args);
        output
    }
}

fn decode_png(bytes: &[u8]) -> RgbImage8 {
    let image = image::load_from_memory(bytes).unwrap().into_rgb8();
    let size = ImageSize::new(image.width(), image.height()).unwrap();
    RgbImage8::from_pixels(size, image.into_raw()).unwrap()
}

#[test]
fn embeddings_are_the_features_of_the_stored_images() {
    let setup = setup(4);
    let output = setup.generate("out", &["--transform", "default=0.7"]);
    let rows = read_embeddings(&output);
    let mapping = read_input_mapping(&output);
    assert_eq!(rows.len(), 11);
    let zip = read_zip(&output);
    let (weights, _) = StateDict::load(&setup.weights).unwrap();
    let embedder = Embedder::new(&weights, EmbedderOptions::default()).unwrap();
    for ((sample_id, timestamp, embedding), (id, ts, file_name)) in rows.iter().zip(&mapping) {
        assert_eq!((sample_id, timestamp), (id, ts));
        // The embedding is of exactly the pixels in the zip, so anyone can recompute it.
        let image = decode_png(&zip[file_name]);
        let expected = &embedder.embed(&[&image]).unwrap()[0];
        let expected: Vec<f64> = expected.iter().map(|&v| f64::from(v)).collect();
        assert_eq!(embedding, &expected, "sample {sample_id}");
    }
    assert_ne!(rows[0].2, rows[1].2);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("drift.json")).unwrap()).unwrap();
    assert_eq!(record["embeddings"]["normalize"], "none");
    assert_eq!(record["embeddings"]["reference_weights"], false);
    assert_eq!(
        record["embeddings"]["weights_file"],
        "test-weights.safetensors"
    );
}

#[test]
fn embeddings_are_identical_at_any_thread_count_and_batch_size() {
    let setup = setup(4);
    let first = bytes_of(&setup.generate("a", &[]));
    assert_eq!(
        first.len(),
        6,
        "four SPEC files, drift.json and drift_log.parquet"
    );
    for (name, extra) in [
        ("b", &["--threads", "1"][..]),
        ("c", &["--threads", "3", "--batch-size", "4"]),
        ("d", &["--batch-size", "1"]),
    ] {
        let other = bytes_of(&setup.generate(name, extra));
        for ((file, bytes), (other_file, other_bytes)) in first.iter().zip(&other) {
            assert_eq!(file, other_file);
            assert!(bytes == other_bytes, "{file} differs with {extra:?}");
        }
    }
    // Normalization changes what the network sees, so it changes every embedding.
    let imagenet = read_embeddings(&setup.generate("e", &["--normalize", "imagenet"]));
    let plain = read_embeddings(&setup.scratch.path().join("a"));
    for (a, b) in imagenet.iter().zip(&plain) {
        assert_ne!(a.2, b.2);
    }
}

#[test]
fn missing_or_bad_weights_get_clear_errors_and_no_output() {
    let setup = setup(2);
    let input = setup.input.to_str().unwrap();
    let output = setup.scratch.path().join("out");
    let base = [
        "generate",
        "--input",
        input,
        "--output",
        output.to_str().unwrap(),
        "--num-samples",
        "3",
    ];
    // No --weights and nothing cached: say how to get them.
    let message = setup.fails(&[&base[..], &["--embeddings"]].concat(), "weights fetch");
    assert!(message.contains("--weights"), "{message}");
    // A missing file, named.
    setup.fails(
        &[
            &base[..],
            &["--embeddings", "--weights", "/nonexistent/r18.pth"],
        ]
        .concat(),
        "/nonexistent/r18.pth",
    );
    // A file that is not weights.
    let junk = setup.scratch.path().join("junk.safetensors");
    std::fs::write(&junk, b"no tensors here").unwrap();
    setup.fails(
        &[
            &base[..],
            &["--embeddings", "--weights", junk.to_str().unwrap()],
        ]
        .concat(),
        "junk.safetensors",
    );
    // Weights without embeddings, and a zero batch.
    setup.fails(
        &[&base[..], &["--weights", setup.weights.to_str().unwrap()]].concat(),
        "--embeddings",
    );
    setup.fails(
        &[&base[..], &["--embeddings", "--batch-size", "0"]].concat(),
        "batch-size",
    );
    setup.fails(
        &[&base[..], &["--embeddings", "--normalize", "zscore"]].concat(),
        "imagenet",
    );
    assert!(listing(&output).is_empty(), "{:?}", listing(&output));
}

#[test]
fn weights_in_the_cache_are_found_without_a_flag() {
    let setup = setup(2);
    std::fs::create_dir_all(&setup.cache).unwrap();
    // Only known file names are looked for; a known name with the wrong hash is refused.
    let cached = setup.cache.join("resnet18-f37072fd.pth");
    std::fs::copy(&setup.weights, &cached).unwrap();
    let output = setup.scratch.path().join("out");
    let args = [
        "generate",
        "--input",
        setup.input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--num-samples",
        "3",
        "--embeddings",
    ];
    setup.fails(
        &args,
        "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
    );
    assert!(listing(&output).is_empty());
}

#[test]
fn python_readers_agree_on_the_embeddings_schema() {
    let Some(python) = check_python() else {
        return;
    };
    let setup = setup(4);
    let output = setup.generate("out", &["--batch-size", "5"]);
    run_python_check(&python, &output, &["--samples", "11", "--embeddings"]);
}

/// Serves `body` at every path but `/missing` (404) on 127.0.0.1, for `connections` requests.
fn serve(body: Vec<u8>, connections: usize) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header == "\r\n" || header.is_empty() {
                    break;
                }
            }
            if request_line.contains("/missing") {
                stream
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
            } else {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
        }
    });
    format!("http://{address}")
}

#[test]
fn weights_fetch_verifies_the_hash_and_deletes_a_mismatch() {
    let setup = setup(1);
    let body = std::fs::read(&setup.weights).unwrap();
    let url = serve(body.clone(), 4);
    let official = format!("{url}/models/resnet18-f37072fd.pth");

    // Not torchvision's file: refused, deleted, and said so.
    let message = setup.fails(
        &["weights", "fetch", "--url", &official, "--quiet"],
        "the download was deleted",
    );
    assert!(message.contains("f37072fd47e89c5e"), "{message}");
    assert!(
        listing(&setup.cache).is_empty(),
        "{:?}",
        listing(&setup.cache)
    );

    // A 404 names the address and the status.
    setup.fails(
        &[
            "weights",
            "fetch",
            "--url",
            &format!("{url}/missing"),
            "--quiet",
        ],
        "404",
    );

    // With the file's own hash it is saved, then found already present.
    let hash = drift_embedder::weights::sha256_file(&setup.weights).unwrap();
    let target = setup.scratch.path().join("fetched/my-weights.safetensors");
    let args = [
        "weights",
        "fetch",
        "--url",
        &official,
        "--sha256",
        &hash,
        "--output",
        target.to_str().unwrap(),
        "--quiet",
    ];
    let out = drift_pipeline(&args, &setup.cache);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&target).unwrap(), body);
    assert_eq!(
        listing(target.parent().unwrap()),
        ["my-weights.safetensors"]
    );
    let out = drift_pipeline(&args, &setup.cache);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already there"));

    // A malformed hash is refused before anything is downloaded.
    setup.fails(
        &["weights", "fetch", "--sha256", "xyz", "--quiet"],
        "64 hexadecimal digits",
    );
}

#[test]
fn a_scenario_embeds_every_segment_with_weights_loaded_once() {
    let setup = setup(3);
    let scenario = setup.scratch.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            "input = \"in\"\nembeddings = true\nweights = \"{}\"\nbatch_size = 4\n\
             [[segment]]\nname = \"reference\"\nsamples = 5\noutput = \"out/reference\"\n\
             [[segment]]\nname = \"drifted\"\nsamples = 6\noutput = \"out/drifted\"\n\
             transforms = [\"gaussian_noise=0.8\"]\n",
            setup.weights.file_name().unwrap().to_str().unwrap()
        ),
    )
    .unwrap();
    let out = drift_pipeline(
        &["run", scenario.to_str().unwrap(), "--quiet"],
        &setup.cache,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = read_embeddings(&setup.scratch.path().join("out/reference"));
    let drifted = read_embeddings(&setup.scratch.path().join("out/drifted"));
    let ids: Vec<i64> = reference.iter().chain(&drifted).map(|row| row.0).collect();
    assert_eq!(ids, (0..11).collect::<Vec<i64>>());
    // The same run as one `generate` of 5 clean samples gives the same reference embeddings.
    let single = setup.scratch.path().join("single");
    let out = drift_pipeline(
        &[
            "generate",
            "--input",
            setup.input.to_str().unwrap(),
            "--output",
            single.to_str().unwrap(),
            "--num-samples",
            "5",
            "--embeddings",
            "--weights",
            setup.weights.to_str().unwrap(),
            "--quiet",
        ],
        &setup.cache,
    );
    assert!(out.status.success());
    assert_eq!(read_embeddings(&single), reference);
}
