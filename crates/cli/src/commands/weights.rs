//! `drift-pipeline weights fetch|list`: the reference weights downloaded and checked, and
//! what the cache holds.

use std::io::IsTerminal;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::WeightsCommand;

pub(crate) fn weights(command: WeightsCommand) -> Result<()> {
    use crate::weights_fetch::{FetchRequest, Fetched, fetch};
    match command {
        WeightsCommand::Fetch {
            url,
            sha256,
            output,
            quiet,
        } => {
            let request = FetchRequest::new(url, sha256, output)?;
            let bar = if quiet || !std::io::stderr().is_terminal() {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0).with_style(
                    ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes}, {bytes_per_sec}, eta {eta}",
                    )
                    .expect("the template is valid"),
                )
            };
            if !quiet {
                eprintln!(
                    "downloading {} to {}",
                    request.url,
                    request.destination.display()
                );
            }
            let result = fetch(&request, &|received, total| {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(received);
            });
            bar.finish_and_clear();
            match result? {
                Fetched::Downloaded(bytes) => outln!(
                    "saved {} ({bytes} bytes, sha256 {} verified)",
                    request.destination.display(),
                    request.sha256
                ),
                Fetched::AlreadyPresent => outln!(
                    "{} is already there (sha256 {} verified)",
                    request.destination.display(),
                    request.sha256
                ),
            }
            Ok(())
        }
        WeightsCommand::List => {
            use drift_pipeline::weights::{CACHE_ENV, KNOWN_WEIGHTS, cache_dir, sha256_file};
            let Some(dir) = cache_dir() else {
                anyhow::bail!("no cache directory: set {CACHE_ENV} or HOME");
            };
            outln!(
                "cache directory {} (override with {CACHE_ENV})",
                dir.display()
            );
            for known in KNOWN_WEIGHTS {
                let path = dir.join(known.file_name);
                let state = if !path.is_file() {
                    "absent".to_owned()
                } else {
                    match sha256_file(&path) {
                        Ok(hash) if hash == known.sha256 => "present, sha256 verified".to_owned(),
                        Ok(hash) => format!("present but WRONG sha256 {hash}: delete it"),
                        Err(error) => format!("unreadable: {error}"),
                    }
                };
                outln!("  {:<32} {state}  ({})", known.file_name, known.description);
            }
            Ok(())
        }
    }
}
