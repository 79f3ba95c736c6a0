//! The end of a zip (central directory and end records) as the `zip` crate writes it, read from
//! one archive and rebuilt for several laid end to end: how a merge on object storage joins
//! shard zips without reading their entries.
//!
//! A zip's local sections (header and data of each entry) hold no offsets, so the local
//! sections of the shards' zips, concatenated, are those of the one zip one process writes.
//! Only the central directory records an entry's offset, and the end records the directory's
//! place and size; [`join`] rewrites those exactly as zip 9.0.5 does (`write_central_and_footer`,
//! `write_central_directory_header`): an offset at or past 4 GiB moves into a zip64 extra
//! field put first among the extras, and past 65,535 entries or 4 GiB the footer gains the
//! zip64 end record and locator. The zip crate writes no central directory on its own, which is
//! why this module exists; it is tested against zips the crate writes, above both limits.

use std::ops::Range;

/// The sentinel of a 32-bit size or offset moved into zip64 (`ZIP64_BYTES_THR`).
const ZIP64_BYTES: u64 = u32::MAX as u64;
/// The most entries a 32-bit end record counts (`ZIP64_ENTRY_THR`).
const ZIP64_ENTRIES: u64 = u16::MAX as u64;
/// The zip crate's lowest "version needed" (`MIN_VERSION`).
const MIN_VERSION: u16 = 10;

const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_RECORD: u32 = 0x0605_4b50;
const ZIP64_END_RECORD: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EXTRA: u16 = 0x0001;
/// Fixed bytes of a central directory record, an end record, a zip64 end record and locator.
const CENTRAL_FIXED: usize = 46;
const END_FIXED: usize = 22;
const ZIP64_END_FIXED: usize = 56;
const LOCATOR_FIXED: usize = 20;

/// Why the end of a zip could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ZipDirectoryError(String);

fn bad(reason: impl Into<String>) -> ZipDirectoryError {
    ZipDirectoryError(reason.into())
}

/// One entry's central directory record, its offset and sizes read out of any zip64 field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The fixed part, as read (the offset and extra length are rewritten on output).
    fixed: [u8; CENTRAL_FIXED],
    name: Vec<u8>,
    /// Extra fields but zip64, in order: (id, data).
    extras: Vec<(u16, Vec<u8>)>,
    comment: Vec<u8>,
    /// Sizes in the zip64 field (uncompressed, compressed), when the record has them there.
    zip64_sizes: Option<(u64, u64)>,
    offset: u64,
}

/// The central directory of one zip: its entries and where its local sections end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipDirectory {
    entries: Vec<Entry>,
    /// Where the central directory starts: the local sections are the bytes before.
    local_bytes: u64,
    comment: Vec<u8>,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The bytes a reader of a zip of `len` bytes fetches first: enough for the end records of an
/// archive without a comment (what this tool writes); [`ZipDirectory::read`] asks for more when
/// that is not enough.
const FIRST_TAIL: u64 = 4096;

impl ZipDirectory {
    /// Reads the central directory of a zip of `len` bytes, fetching byte ranges of it with
    /// `read_at` (a few small ranges from the end, then the directory itself).
    pub fn read<E>(
        len: u64,
        read_at: &mut dyn FnMut(Range<u64>) -> Result<Vec<u8>, E>,
    ) -> Result<Result<Self, ZipDirectoryError>, E> {
        // The end record is in the last 22 bytes plus the comment (at most 65,535 bytes).
        let mut tail_len = len.min(FIRST_TAIL);
        let (tail, at) = loop {
            let tail = read_at(len - tail_len..len)?;
            match find_end_record(&tail) {
                Some(at) => break (tail, at),
                None if tail_len < len.min(FIRST_TAIL + ZIP64_ENTRIES + END_FIXED as u64) => {
                    tail_len = len.min(FIRST_TAIL + ZIP64_ENTRIES + END_FIXED as u64);
                }
                None => return Ok(Err(bad("has no end of central directory record"))),
            }
        };
        let tail_start = len - tail_len;
        let end = &tail[at..];
        let comment_len = u16_at(end, 20) as usize;
        let comment = end[END_FIXED..END_FIXED + comment_len].to_vec();
        let mut entries = u64::from(u16_at(end, 10));
        let mut cd_size = u64::from(u32_at(end, 12));
        let mut cd_start = u64::from(u32_at(end, 16));
        // A zip64 locator sits right before the end record when the footer is zip64.
        if at >= LOCATOR_FIXED && u32_at(&tail, at - LOCATOR_FIXED) == ZIP64_LOCATOR {
            let record_at = u64_at(&tail, at - LOCATOR_FIXED + 8);
            let record = read_at(record_at..record_at + ZIP64_END_FIXED as u64)?;
            if record.len() != ZIP64_END_FIXED || u32_at(&record, 0) != ZIP64_END_RECORD {
                return Ok(Err(bad("its zip64 locator points at no zip64 end record")));
            }
            entries = u64_at(&record, 32);
            cd_size = u64_at(&record, 40);
            cd_start = u64_at(&record, 48);
        }
        let end_at = tail_start + at as u64;
        if cd_start.checked_add(cd_size).is_none_or(|e| e > end_at) {
            return Ok(Err(bad("its central directory lies past its end record")));
        }
        let directory = read_at(cd_start..cd_start + cd_size)?;
        Ok(parse_entries(&directory, entries).map(|entries| Self {
            entries,
            local_bytes: cd_start,
            comment,
        }))
    }

    /// Bytes before the central directory: the entries' local sections.
    pub fn local_bytes(&self) -> u64 {
        self.local_bytes
    }

    /// Entries in the archive.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries' names, in the directory's order.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
    }
}

/// Where the end record starts in `tail`, searching back from its end.
fn find_end_record(tail: &[u8]) -> Option<usize> {
    (0..=tail.len().checked_sub(END_FIXED)?).rev().find(|&at| {
        u32_at(tail, at) == END_RECORD
            && at + END_FIXED + u16_at(tail, at + 20) as usize == tail.len()
    })
}

fn parse_entries(directory: &[u8], count: u64) -> Result<Vec<Entry>, ZipDirectoryError> {
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1 << 24));
    let mut at = 0;
    while at < directory.len() {
        let rest = &directory[at..];
        if rest.len() < CENTRAL_FIXED || u32_at(rest, 0) != CENTRAL_HEADER {
            return Err(bad(format!(
                "central directory record {} is broken",
                entries.len()
            )));
        }
        let fixed: [u8; CENTRAL_FIXED] = rest[..CENTRAL_FIXED].try_into().expect("checked");
        let (name_len, extra_len, comment_len) = (
            u16_at(&fixed, 28) as usize,
            u16_at(&fixed, 30) as usize,
            u16_at(&fixed, 32) as usize,
        );
        let record_len = CENTRAL_FIXED + name_len + extra_len + comment_len;
        if rest.len() < record_len {
            return Err(bad(format!(
                "central directory record {} is cut short",
                entries.len()
            )));
        }
        let name = rest[CENTRAL_FIXED..CENTRAL_FIXED + name_len].to_vec();
        let extra = &rest[CENTRAL_FIXED + name_len..CENTRAL_FIXED + name_len + extra_len];
        let comment = rest[CENTRAL_FIXED + name_len + extra_len..record_len].to_vec();
        let (uncompressed, compressed) =
            (u64::from(u32_at(&fixed, 24)), u64::from(u32_at(&fixed, 20)));
        let mut offset = u64::from(u32_at(&fixed, 42));
        let mut zip64_sizes = None;
        let mut extras = Vec::new();
        let mut field = 0;
        while field + 4 <= extra.len() {
            let (id, size) = (u16_at(extra, field), u16_at(extra, field + 2) as usize);
            let data = extra.get(field + 4..field + 4 + size).ok_or_else(|| {
                bad(format!(
                    "entry {}'s extra field is cut short",
                    entries.len()
                ))
            })?;
            if id == ZIP64_EXTRA {
                // Values are present only for the fields holding the sentinel, in this order.
                let mut values = data.chunks_exact(8).map(|c| u64_at(c, 0));
                let mut next = |name: &str| {
                    values.next().ok_or_else(|| {
                        bad(format!(
                            "entry {}'s zip64 field lacks its {name}",
                            entries.len()
                        ))
                    })
                };
                let sizes_moved = uncompressed == ZIP64_BYTES || compressed == ZIP64_BYTES;
                if sizes_moved {
                    let u = next("uncompressed size")?;
                    let c = next("compressed size")?;
                    zip64_sizes = Some((u, c));
                }
                if offset == ZIP64_BYTES {
                    offset = next("offset")?;
                }
            } else {
                extras.push((id, data.to_vec()));
            }
            field += 4 + size;
        }
        entries.push(Entry {
            fixed,
            name,
            extras,
            comment,
            zip64_sizes,
            offset,
        });
        at += record_len;
    }
    if entries.len() as u64 != count {
        return Err(bad(format!(
            "its end record counts {count} entries, its central directory holds {}",
            entries.len()
        )));
    }
    Ok(entries)
}

/// The central directory and end records of the zip whose local sections are those of `parts`,
/// in order: what the zip crate writes after writing their entries one after another.
pub fn join(parts: &[ZipDirectory]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut base = 0u64;
    let mut files = 0u64;
    let mut version_needed = MIN_VERSION;
    for part in parts {
        for entry in &part.entries {
            write_entry(&mut out, entry, base + entry.offset);
            version_needed = version_needed.max(u16_at(&entry.fixed, 6));
            files += 1;
        }
        base += part.local_bytes;
    }
    let (central_start, central_size) = (base, out.len() as u64);
    let is64 = files > ZIP64_ENTRIES || central_size.max(central_start) > ZIP64_BYTES;
    if is64 {
        out.extend_from_slice(&ZIP64_END_RECORD.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&version_needed.to_le_bytes());
        out.extend_from_slice(&version_needed.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&files.to_le_bytes());
        out.extend_from_slice(&files.to_le_bytes());
        out.extend_from_slice(&central_size.to_le_bytes());
        out.extend_from_slice(&central_start.to_le_bytes());
        out.extend_from_slice(&ZIP64_LOCATOR.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(central_start + central_size).to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    let size_field = if is64 {
        u32::MAX
    } else {
        central_size.min(ZIP64_BYTES) as u32
    };
    let entries_field = files.min(ZIP64_ENTRIES) as u16;
    let comment = parts.first().map_or(&[][..], |p| &p.comment);
    out.extend_from_slice(&END_RECORD.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&entries_field.to_le_bytes());
    out.extend_from_slice(&entries_field.to_le_bytes());
    out.extend_from_slice(&size_field.to_le_bytes());
    out.extend_from_slice(&(central_start.min(ZIP64_BYTES) as u32).to_le_bytes());
    out.extend_from_slice(&(comment.len() as u16).to_le_bytes());
    out.extend_from_slice(comment);
    out
}

/// One central directory record with the entry's local header at `offset`.
fn write_entry(out: &mut Vec<u8>, entry: &Entry, offset: u64) {
    // As `Zip64ExtendedInformation::central_header`: sizes when they were there (rebasing does
    // not change them), the offset when it no longer fits 32 bits.
    let mut zip64 = Vec::new();
    if let Some((uncompressed, compressed)) = entry.zip64_sizes {
        zip64.extend_from_slice(&uncompressed.to_le_bytes());
        zip64.extend_from_slice(&compressed.to_le_bytes());
    }
    if offset != 0 && offset >= ZIP64_BYTES {
        zip64.extend_from_slice(&offset.to_le_bytes());
    }
    let extras_len: usize = entry.extras.iter().map(|(_, d)| 4 + d.len()).sum::<usize>()
        + if zip64.is_empty() { 0 } else { 4 + zip64.len() };
    let mut fixed = entry.fixed;
    fixed[30..32].copy_from_slice(&(extras_len as u16).to_le_bytes());
    fixed[42..46].copy_from_slice(&(offset.min(ZIP64_BYTES) as u32).to_le_bytes());
    out.extend_from_slice(&fixed);
    out.extend_from_slice(&entry.name);
    if !zip64.is_empty() {
        out.extend_from_slice(&ZIP64_EXTRA.to_le_bytes());
        out.extend_from_slice(&(zip64.len() as u16).to_le_bytes());
        out.extend_from_slice(&zip64);
    }
    for (id, data) in &entry.extras {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(data.len() as u16).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&entry.comment);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    /// A zip sink that keeps only small writes (headers and directories) and the length: zips
    /// of several GiB are written without holding their data.
    #[derive(Default)]
    struct SparseSink {
        writes: Vec<(u64, Vec<u8>)>,
        position: u64,
        len: u64,
    }

    impl Write for SparseSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() <= 4096 {
                self.writes.push((self.position, buf.to_vec()));
            }
            self.position += buf.len() as u64;
            self.len = self.len.max(self.position);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for SparseSink {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.position = match to {
                SeekFrom::Start(at) => at,
                SeekFrom::Current(d) => self.position.checked_add_signed(d).unwrap(),
                SeekFrom::End(d) => self.len.checked_add_signed(d).unwrap(),
            };
            Ok(self.position)
        }
    }

    impl SparseSink {
        /// Bytes `range` (zeros where only big writes went).
        fn read(&self, range: Range<u64>) -> Vec<u8> {
            let mut out = vec![0u8; (range.end - range.start) as usize];
            for (at, bytes) in &self.writes {
                let (start, end) = (*at, at + bytes.len() as u64);
                let (lo, hi) = (start.max(range.start), end.min(range.end));
                if lo < hi {
                    out[(lo - range.start) as usize..(hi - range.start) as usize]
                        .copy_from_slice(&bytes[(lo - start) as usize..(hi - start) as usize]);
                }
            }
            out
        }
    }

    /// A zip of entries `entries` (each `size` bytes of data) as drift-writer writes them.
    fn write_zip(entries: Range<usize>, size: usize) -> SparseSink {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644);
        let mut zip = zip::ZipWriter::new(SparseSink::default());
        let data = vec![7u8; size];
        for index in entries {
            zip.start_file(format!("{index:036}.png"), options).unwrap();
            zip.write_all(&data).unwrap();
        }
        zip.finish().unwrap()
    }

    fn directory(sink: &SparseSink) -> ZipDirectory {
        ZipDirectory::read::<()>(sink.len, &mut |range| Ok(sink.read(range)))
            .unwrap()
            .unwrap()
    }

    /// Splits `count` entries of `size` bytes into shards at `cuts`, joins the shards'
    /// directories and compares with the zip one writer makes of them all.
    fn check_join(count: usize, size: usize, cuts: &[usize]) -> ZipDirectory {
        let whole = write_zip(0..count, size);
        let expected = directory(&whole);
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(count);
        let shards: Vec<ZipDirectory> = bounds
            .windows(2)
            .map(|w| directory(&write_zip(w[0]..w[1], size)))
            .collect();
        assert_eq!(
            shards.iter().map(ZipDirectory::local_bytes).sum::<u64>(),
            expected.local_bytes(),
            "local sections are position-independent"
        );
        let joined = join(&shards);
        assert_eq!(
            joined,
            whole.read(expected.local_bytes()..whole.len),
            "the joined directory is the one writer's, byte for byte"
        );
        expected
    }

    #[test]
    fn small_zips_join_as_one_writer_writes_them() {
        let whole = check_join(300, 1000, &[140]);
        assert_eq!(whole.len(), 300);
        assert_eq!(whole.names().nth(2).unwrap(), format!("{:036}.png", 2));
        check_join(5, 10, &[1, 2, 3, 4]);
    }

    #[test]
    fn past_65535_entries_the_footer_is_zip64_as_the_zip_crate_writes_it() {
        let whole = check_join(70_000, 3, &[30_000, 65_535]);
        assert_eq!(whole.len(), 70_000);
    }

    #[test]
    fn past_4_gib_offsets_and_the_footer_are_zip64_as_the_zip_crate_writes_them() {
        // 80 entries of 64 MiB: offsets cross 4 GiB after entry 63, in the middle shard.
        let whole = check_join(80, 64 << 20, &[40, 70]);
        assert!(whole.local_bytes() > ZIP64_BYTES);
    }

    #[test]
    fn a_broken_end_is_an_error_not_a_panic() {
        let sink = write_zip(0..3, 10);
        let mut bytes = sink.read(0..sink.len);
        let len = bytes.len();
        let read = |bytes: &[u8]| {
            ZipDirectory::read::<()>(bytes.len() as u64, &mut |r| {
                Ok(bytes[r.start as usize..r.end.min(bytes.len() as u64) as usize].to_vec())
            })
            .unwrap()
        };
        assert!(read(&bytes).is_ok());
        // The directory's size made to overrun the end record.
        bytes[len - 10..len - 6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(&bytes).is_err());
        assert!(read(&[1, 2, 3]).is_err());
        assert!(read(&[]).is_err());
    }
}
