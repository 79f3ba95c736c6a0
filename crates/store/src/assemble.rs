//! One object assembled from pieces of others (and a few bytes of its own) by a multipart
//! upload: on S3 each large piece is a ranged `UploadPartCopy`, done by the store, so its bytes
//! never pass through this machine; elsewhere (and for pieces too small to be a part) the bytes
//! are read and uploaded. This is how a merge joins shard zips without downloading the images,
//! and how a file over the 5 GiB single-copy limit is copied.
//!
//! object_store keeps `UploadPartCopy` to itself (only whole-object copies, `pub(crate)`), so
//! the request is presigned with its public [`Signer::signed_url_opts`] (the part number, the
//! upload id and the copy-source headers bound to the signature, as its docs show for
//! `UploadPart`) and sent here; the upload is created, completed and aborted through its
//! [`MultipartStore`].

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use object_store::multipart::PartId;
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer as _};
use object_store::{ObjectStoreExt as _, PutPayload};

use crate::{RemoteLocation, StoreError, block_on, redact};

/// Every part but the last must be at least this big (S3, and most stores like it).
pub const MIN_PART: u64 = 5 << 20;
/// A part (copied or uploaded) is at most this big (S3's limit).
pub const MAX_PART: u64 = 5 << 30;
/// A multipart upload has at most this many parts (S3's limit).
pub const MAX_PARTS: usize = 10_000;
/// Bytes read and uploaded per part where the store cannot copy.
const UPLOAD_PART: u64 = 8 << 20;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// A piece of an object being assembled, in order.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes `range` of object `key` below `source` (a store of the same kind).
    Range {
        /// The prefix the object is below.
        source: RemoteLocation,
        /// Its key, relative to `source`.
        key: String,
        /// The bytes of it.
        range: Range<u64>,
    },
    /// These bytes.
    Bytes(Bytes),
    /// Bytes `range` of the local file `path` (read when its part is uploaded).
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The bytes of it.
        range: Range<u64>,
    },
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Range { range, .. } | Piece::File { range, .. } => range.end - range.start,
            Piece::Bytes(bytes) => bytes.len() as u64,
        }
    }
}

/// What an assembly moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblyStats {
    /// Bytes the store copied itself (never through this machine).
    pub copied_bytes: u64,
    /// Bytes read from the store to be uploaded again (pieces too small for a part of their
    /// own, or a store that cannot copy ranges).
    pub downloaded_bytes: u64,
    /// Bytes uploaded (what was read, plus the pieces given as bytes).
    pub uploaded_bytes: u64,
    /// Parts of the upload.
    pub parts: usize,
}

/// A part of the upload.
#[derive(Debug)]
enum Part {
    /// Copied by the store.
    Copy {
        source: RemoteLocation,
        key: String,
        range: Range<u64>,
    },
    /// Uploaded: these pieces (ranges read first), concatenated.
    Upload(Vec<Piece>),
}

/// The parts for `pieces`: ranges copied where `can_copy` says the store copies them and they
/// are big enough to be a part; everything else read and uploaded, in parts of at least
/// [`MIN_PART`] (but the last) and at most [`UPLOAD_PART`] of read bytes.
fn plan(pieces: Vec<Piece>, can_copy: &dyn Fn(&RemoteLocation) -> bool) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut buffer: Vec<Piece> = Vec::new();
    let buffered = |buffer: &[Piece]| buffer.iter().map(Piece::len).sum::<u64>();
    for piece in pieces {
        let (source, key, range) = match piece {
            Piece::Bytes(bytes) => {
                buffer.push(Piece::Bytes(bytes));
                continue;
            }
            Piece::File { path, range } => {
                // Read in upload parts: memory stays bounded whatever the file's size.
                let mut start = range.start;
                while start < range.end {
                    let room = UPLOAD_PART.saturating_sub(buffered(&buffer)).max(1);
                    let end = (start + room).min(range.end);
                    buffer.push(Piece::File {
                        path: path.clone(),
                        range: start..end,
                    });
                    start = end;
                    if buffered(&buffer) >= UPLOAD_PART {
                        parts.push(Part::Upload(std::mem::take(&mut buffer)));
                    }
                }
                continue;
            }
            Piece::Range { source, key, range } => (source, key, range),
        };
        let mut start = range.start;
        let copy = can_copy(&source);
        while start < range.end {
            let held = buffered(&buffer);
            // A part under way is filled from this piece up to the minimum first (or, where
            // nothing is copied, up to a whole upload part).
            if held > 0 || !copy || range.end - start < MIN_PART {
                let room = if copy { MIN_PART } else { UPLOAD_PART }.saturating_sub(held);
                let take = room.max(1).min(range.end - start);
                buffer.push(Piece::Range {
                    source: source.clone(),
                    key: key.clone(),
                    range: start..start + take,
                });
                start += take;
                if buffered(&buffer) >= MIN_PART {
                    parts.push(Part::Upload(std::mem::take(&mut buffer)));
                }
                continue;
            }
            // The rest is copied, in as few parts as the largest part size allows, each of
            // them far above the minimum when there are several.
            let rest = range.end - start;
            let count = rest.div_ceil(MAX_PART);
            let size = rest.div_ceil(count);
            while start < range.end {
                let end = (start + size).min(range.end);
                parts.push(Part::Copy {
                    source: source.clone(),
                    key: key.clone(),
                    range: start..end,
                });
                start = end;
            }
        }
    }
    if !buffer.is_empty() || parts.is_empty() {
        parts.push(Part::Upload(buffer));
    }
    parts
}

impl RemoteLocation {
    /// Writes object `relative` as the concatenation of `pieces` (see the module docs), by one
    /// multipart upload, aborted if anything fails. `on_upload` is told the upload's id first,
    /// so that a writer killed half-way can have it aborted by whoever comes next.
    pub fn assemble(
        &self,
        relative: &str,
        pieces: Vec<Piece>,
        on_upload: &mut dyn FnMut(&str) -> Result<(), StoreError>,
    ) -> Result<AssemblyStats, StoreError> {
        let parts = plan(pieces, &|source| self.can_copy_from(source));
        if parts.len() > MAX_PARTS {
            return Err(StoreError::Request {
                url: self.url_of(relative),
                reason: format!(
                    "would take {} parts, over the store's {MAX_PARTS}",
                    parts.len()
                ),
            });
        }
        let mut stats = AssemblyStats {
            parts: parts.len(),
            ..AssemblyStats::default()
        };
        for part in &parts {
            match part {
                Part::Copy { range, .. } => stats.copied_bytes += range.end - range.start,
                Part::Upload(pieces) => {
                    for piece in pieces {
                        stats.uploaded_bytes += piece.len();
                        if let Piece::Range { range, .. } = piece {
                            stats.downloaded_bytes += range.end - range.start;
                        }
                    }
                }
            }
        }
        let path = self.path(relative);
        let multipart = self.backend.multipart.clone();
        let id =
            block_on(multipart.create_multipart(&path)).map_err(|e| self.error(relative, e))?;
        let outcome = on_upload(&id).and_then(|()| {
            let uploaded = block_on(async {
                futures_util::stream::iter(parts.into_iter().enumerate())
                    .map(|(index, part)| self.put_part(&path, &id, index, part))
                    .buffered(PARTS_IN_FLIGHT)
                    .collect::<Vec<_>>()
                    .await
            });
            let ids = uploaded.into_iter().collect::<Result<Vec<_>, _>>()?;
            crate::transaction::fault_point("remote-assembling");
            block_on(multipart.complete_multipart(&path, &id, ids))
                .map_err(|e| self.error(relative, e))
        });
        match outcome {
            Ok(_) => Ok(stats),
            Err(error) => {
                let _ = block_on(multipart.abort_multipart(&path, &id));
                Err(error)
            }
        }
    }

    /// Aborts the multipart upload `id` of object `relative` (one a dead writer left); one
    /// already gone is not an error.
    pub fn abort_upload(&self, relative: &str, id: &str) -> Result<(), StoreError> {
        let path = self.path(relative);
        let multipart = self.backend.multipart.clone();
        match block_on(multipart.abort_multipart(&path, &id.to_owned())) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.error(relative, error)),
        }
    }

    /// Whether ranges of objects below `source` can be copied into objects here by the store.
    fn can_copy_from(&self, source: &RemoteLocation) -> bool {
        // S3 copies across buckets of one endpoint with one set of credentials, which the
        // environment configures for both.
        self.backend.s3.is_some() && source.backend.s3.is_some()
    }

    async fn put_part(
        &self,
        path: &ObjectPath,
        id: &str,
        index: usize,
        part: Part,
    ) -> Result<PartId, StoreError> {
        match part {
            Part::Copy { source, key, range } => {
                let s3 = self
                    .backend
                    .s3
                    .as_ref()
                    .expect("copies are planned on S3 only");
                let from = source.path(&key);
                s3.copy_part(path, id, index, &source, &from, range)
                    .await
                    .map_err(|reason| StoreError::Request {
                        url: self.url.clone(),
                        reason: redact(&format!(
                            "copying bytes of {} into part {}: {reason}",
                            source.url_of(&key),
                            index + 1
                        )),
                    })
            }
            Part::Upload(pieces) => {
                let mut bytes = BytesMut::new();
                for piece in pieces {
                    match piece {
                        Piece::Bytes(piece) => bytes.extend_from_slice(&piece),
                        Piece::File { path, range } => {
                            read_file_range(&path, range, &mut bytes)
                                .map_err(|source| StoreError::Local { path, source })?;
                        }
                        Piece::Range { source, key, range } => {
                            let from = source.path(&key);
                            let read = source
                                .store
                                .get_range(&from, range)
                                .await
                                .map_err(|e| source.error(&key, e))?;
                            bytes.extend_from_slice(&read);
                        }
                    }
                }
                let payload = PutPayload::from(bytes.freeze());
                self.backend
                    .multipart
                    .put_part(path, &id.to_owned(), index, payload)
                    .await
                    .map_err(|e| self.error(path.as_ref(), e))
            }
        }
    }

    /// Bytes `range` of object `relative`.
    pub fn get_range(&self, relative: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = self.path(relative);
        let store = self.store.clone();
        block_on(async move { store.get_range(&path, range).await })
            .map_err(|e| self.error(relative, e))
    }

    /// The size of object `relative`.
    pub fn size(&self, relative: &str) -> Result<u64, StoreError> {
        let path = self.path(relative);
        let store = self.store.clone();
        block_on(async move { store.head(&path).await })
            .map(|meta| meta.size)
            .map_err(|e| self.error(relative, e))
    }

    /// Streams bytes `range` of object `relative` through `sink`, a chunk at a time (memory
    /// stays bounded whatever the object's size); returns the bytes read.
    pub fn read_range(
        &self,
        relative: &str,
        range: Range<u64>,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let path = self.path(relative);
        let store = self.store.clone();
        block_on(async move {
            let options = object_store::GetOptions {
                range: Some(range.into()),
                ..Default::default()
            };
            let mut stream = store
                .get_opts(&path, options)
                .await
                .map_err(|e| self.error(relative, e))?
                .into_stream();
            let mut read = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.error(relative, e))?;
                sink(&chunk)?;
                read += chunk.len() as u64;
            }
            Ok(read)
        })
    }
}

/// Appends bytes `range` of the file `path` to `bytes`.
fn read_file_range(
    path: &std::path::Path,
    range: Range<u64>,
    bytes: &mut BytesMut,
) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _};
    let mut file = drift_core::open_regular(path)?;
    file.seek(std::io::SeekFrom::Start(range.start))?;
    let start = bytes.len();
    bytes.resize(start + (range.end - range.start) as usize, 0);
    file.read_exact(&mut bytes[start..])
}

/// Ranged part copies on S3: `UploadPartCopy` with `x-amz-copy-source-range`, presigned by the
/// store's own signer and sent with a client of our own.
pub(crate) struct S3PartCopy {
    store: Arc<object_store::aws::AmazonS3>,
    bucket: String,
    client: reqwest::Client,
}

/// S3's answer to a part copy (on success).
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CopyPartResult {
    e_tag: String,
}

impl S3PartCopy {
    pub(crate) fn new(store: Arc<object_store::aws::AmazonS3>, bucket: &str) -> Self {
        Self {
            store,
            bucket: bucket.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    async fn copy_part(
        &self,
        path: &ObjectPath,
        id: &str,
        index: usize,
        source: &RemoteLocation,
        from: &ObjectPath,
        range: Range<u64>,
    ) -> Result<PartId, String> {
        let source_bucket = source
            .backend
            .s3
            .as_ref()
            .map_or(self.bucket.as_str(), |s| s.bucket.as_str());
        let copy_source = format!("{source_bucket}/{}", encode_key(from.as_ref()));
        let copy_range = format!("bytes={}-{}", range.start, range.end - 1);
        let header = |value: &str| {
            http::HeaderValue::from_str(value).map_err(|e| format!("header value: {e}"))
        };
        let options = SignedUrlOptions::default()
            .with_query([
                ("partNumber", (index + 1).to_string()),
                ("uploadId", id.to_owned()),
            ])
            .with_signed_header(
                http::HeaderName::from_static("x-amz-copy-source"),
                header(&copy_source)?,
            )
            .with_signed_header(
                http::HeaderName::from_static("x-amz-copy-source-range"),
                header(&copy_range)?,
            );
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            tries += 1;
            let url = self
                .store
                .signed_url_opts(http::Method::PUT, path, Duration::from_secs(3600), &options)
                .await
                .map_err(|e| e.to_string())?;
            let response = self
                .client
                .put(url)
                .header("x-amz-copy-source", &copy_source)
                .header("x-amz-copy-source-range", &copy_range)
                .send()
                .await;
            let retry = match response {
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.map_err(|e| e.to_string())?;
                    // S3 may answer a copy 200 and still report an error in the body.
                    if status.is_success() && !body.contains("<Error>") {
                        let result: CopyPartResult = quick_xml::de::from_str(&body)
                            .map_err(|e| format!("unreadable answer ({e})"))?;
                        return Ok(PartId {
                            content_id: result.e_tag,
                        });
                    }
                    let retryable = status.is_server_error()
                        || status.as_u16() == 429
                        || body.contains("SlowDown")
                        || body.contains("InternalError");
                    if !retryable {
                        return Err(format!("{status}: {}", error_code(&body)));
                    }
                    format!("{status}: {}", error_code(&body))
                }
                Err(error) => error.to_string(),
            };
            if tries >= 5 {
                return Err(format!("{retry} (after {tries} tries)"));
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
}

/// The `<Code>` and `<Message>` of an S3 error body, not the whole body.
fn error_code(body: &str) -> String {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        body.split_once(&open)
            .and_then(|(_, rest)| rest.split_once(&close))
            .map(|(value, _)| value.to_owned())
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code} ({message})"),
        (Some(code), None) => code,
        _ => "the store refused the copy".into(),
    }
}

/// `key` as `x-amz-copy-source` wants it: each path part percent-encoded.
fn encode_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    key.split('/')
        .map(|part| percent_encoding::utf8_percent_encode(part, KEEP).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(name: &str) -> RemoteLocation {
        RemoteLocation::open(&format!("memory://{name}/prefix")).unwrap()
    }

    fn sizes(parts: &[Part]) -> Vec<(char, u64)> {
        parts
            .iter()
            .map(|part| match part {
                Part::Copy { range, .. } => ('c', range.end - range.start),
                Part::Upload(pieces) => ('u', pieces.iter().map(Piece::len).sum()),
            })
            .collect()
    }

    #[test]
    fn parts_are_copies_where_big_enough_and_uploads_of_at_least_the_minimum() {
        let source = memory("assemble-plan");
        let range = |start: u64, end: u64| Piece::Range {
            source: source.clone(),
            key: "a".into(),
            range: start..end,
        };
        let copy = |_: &RemoteLocation| true;
        const M: u64 = MIN_PART;
        // Two big ranges and a tail: two copies and the tail uploaded.
        let parts = plan(
            vec![
                range(0, 3 * M),
                range(0, 2 * M),
                Piece::Bytes(vec![1; 10].into()),
            ],
            &copy,
        );
        assert_eq!(sizes(&parts), [('c', 3 * M), ('c', 2 * M), ('u', 10)]);
        // A small range first: it is topped up to the minimum from the next, whose rest is
        // copied when big enough and read otherwise.
        let parts = plan(vec![range(0, 100), range(0, 2 * M), range(0, M + 5)], &copy);
        assert_eq!(sizes(&parts), [('u', M), ('c', M + 100), ('c', M + 5)]);
        let parts = plan(vec![range(0, 100), range(0, M + 50)], &copy);
        assert_eq!(sizes(&parts), [('u', M), ('u', 150)]);
        // A range over the largest part is split into near-equal copies.
        let parts = plan(vec![range(0, 2 * MAX_PART + 3)], &copy);
        let got = sizes(&parts);
        assert_eq!(got.len(), 3);
        assert!(
            got.iter()
                .all(|&(kind, size)| kind == 'c' && size <= MAX_PART)
        );
        assert_eq!(got.iter().map(|p| p.1).sum::<u64>(), 2 * MAX_PART + 3);
        // Without copies everything is read, in parts of the upload size.
        let parts = plan(
            vec![range(0, 20 << 20), Piece::Bytes(vec![0; 7].into())],
            &|_| false,
        );
        assert_eq!(
            sizes(&parts),
            [('u', 8 << 20), ('u', 8 << 20), ('u', (4 << 20) + 7)]
        );
        // A local file is uploaded in upload parts.
        let file = Piece::File {
            path: "f".into(),
            range: 0..(17 << 20),
        };
        assert_eq!(
            sizes(&plan(vec![file], &copy)),
            [('u', 8 << 20), ('u', 8 << 20), ('u', 1 << 20)]
        );
        // Nothing at all is one empty part (an empty object).
        assert_eq!(sizes(&plan(Vec::new(), &copy)), [('u', 0)]);
    }

    #[test]
    fn an_assembled_object_is_its_pieces_concatenated() {
        let location = memory("assemble-bytes");
        let a: Vec<u8> = (0..(11u32 << 20)).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8).collect();
        location.put("a", a.clone()).unwrap();
        location.put("b", b.clone()).unwrap();
        let pieces = vec![
            Piece::Range {
                source: location.clone(),
                key: "a".into(),
                range: 5..a.len() as u64,
            },
            Piece::Bytes(Bytes::from_static(b"middle")),
            Piece::Range {
                source: location.clone(),
                key: "b".into(),
                range: 0..1000,
            },
        ];
        let mut ids = Vec::new();
        let stats = location
            .assemble("joined", pieces, &mut |id| {
                ids.push(id.to_owned());
                Ok(())
            })
            .unwrap();
        let mut expected = a[5..].to_vec();
        expected.extend_from_slice(b"middle");
        expected.extend_from_slice(&b[..1000]);
        assert_eq!(
            location.get("joined").unwrap().as_ref(),
            expected.as_slice()
        );
        assert_eq!(ids.len(), 1);
        assert_eq!(stats.copied_bytes, 0, "memory stores copy no ranges");
        assert_eq!(stats.downloaded_bytes, a.len() as u64 - 5 + 1000);
        assert_eq!(stats.uploaded_bytes, expected.len() as u64);
        let mut streamed = Vec::new();
        let read = location
            .read_range("joined", 3..expected.len() as u64, &mut |chunk| {
                streamed.extend_from_slice(chunk);
                Ok(())
            })
            .unwrap();
        assert_eq!(read, expected.len() as u64 - 3);
        assert_eq!(streamed, expected[3..]);
        assert_eq!(location.size("joined").unwrap(), expected.len() as u64);
    }

    #[test]
    fn a_failed_assembly_leaves_no_object() {
        let location = memory("assemble-fail");
        let pieces = vec![Piece::Range {
            source: location.clone(),
            key: "missing".into(),
            range: 0..10,
        }];
        let error = location
            .assemble("joined", pieces, &mut |_| Ok(()))
            .unwrap_err();
        assert!(matches!(error, StoreError::NotFound { .. }), "{error}");
        assert!(!location.exists("joined").unwrap());
    }

    #[test]
    fn copy_sources_are_percent_encoded_per_part() {
        assert_eq!(encode_key("run 1/a+b/x.zip"), "run%201/a%2Bb/x.zip");
    }
}
