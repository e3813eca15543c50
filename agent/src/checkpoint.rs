//! Durable files: whole-file checkpoints written atomically (temp file,
//! fsync, rename, fsync of the directory) and append-only record logs
//! (4-byte little-endian length, then the record, fsync'd per append) like
//! Mesos's `task.updates`. A torn last record is cut off on read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Largest record accepted when reading a log back.
const MAX_RECORD: usize = 64 * 1024 * 1024;

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent", path.display()),
        )
    })
}

/// Replaces `path` with `data` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = parent(path)?;
    fs::create_dir_all(dir)?;
    let tmp = temp_name(path);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()))
}

/// Writes a protobuf message atomically.
pub fn write_message<M: prost::Message>(path: &Path, message: &M) -> io::Result<()> {
    write_atomic(path, &message.encode_to_vec())
}

/// Reads a protobuf message; `Ok(None)` if the file does not exist.
pub fn read_message<M: prost::Message + Default>(path: &Path) -> io::Result<Option<M>> {
    match fs::read(path) {
        Ok(data) => M::decode(data.as_slice()).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a small text file; `Ok(None)` if it does not exist.
pub fn read_text(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Points the symlink `link` at `target`, atomically.
pub fn replace_symlink(target: &Path, link: &Path) -> io::Result<()> {
    let dir = parent(link)?;
    fs::create_dir_all(dir)?;
    let tmp = temp_name(link);
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link)?;
    sync_dir(dir)
}

/// Appends one record durably, creating the log (and its directory) if
/// needed.
pub fn append_record(path: &Path, record: &[u8]) -> io::Result<()> {
    let dir = parent(path)?;
    let created = !path.exists();
    if created {
        fs::create_dir_all(dir)?;
    }
    let len = u32::try_from(record.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record larger than 4 GiB"))?;
    let mut framed = Vec::with_capacity(record.len() + 4);
    framed.extend_from_slice(&len.to_le_bytes());
    framed.extend_from_slice(record);
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(&framed)?;
    file.sync_data()?;
    if created {
        sync_dir(dir)?;
    }
    Ok(())
}

/// What reading a record log found.
#[derive(Debug, Default)]
pub struct RecordLog {
    /// Complete records, in order.
    pub records: Vec<Bytes>,
    /// Bytes of a torn last record that were cut off.
    pub truncated_bytes: usize,
}

/// Reads every complete record of a log. A torn tail (an agent crash in
/// the middle of an append) is removed from the file so later appends
/// start at a record boundary. A missing file is an empty log.
pub fn read_records(path: &Path) -> io::Result<RecordLog> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RecordLog::default()),
        Err(e) => return Err(e),
    }
    let (records, good) = split_records(&data);
    let truncated_bytes = data.len() - good;
    if truncated_bytes > 0 {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(good as u64)?;
        file.sync_all()?;
    }
    Ok(RecordLog {
        records,
        truncated_bytes,
    })
}

/// Splits framed records; returns them and the length of the well-formed
/// prefix.
pub fn split_records(data: &[u8]) -> (Vec<Bytes>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while data.len() - offset >= 4 {
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&data[offset..offset + 4]);
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > MAX_RECORD || data.len() - offset - 4 < len {
            break;
        }
        records.push(Bytes::copy_from_slice(&data[offset + 4..offset + 4 + len]));
        offset += 4 + len;
    }
    (records, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/task.updates");
        append_record(&path, b"one").expect("append");
        append_record(&path, b"").expect("append empty");
        append_record(&path, b"three").expect("append");
        let log = read_records(&path).expect("read");
        assert_eq!(
            log.records,
            vec![
                Bytes::from_static(b"one"),
                Bytes::new(),
                Bytes::from_static(b"three")
            ]
        );
        assert_eq!(log.truncated_bytes, 0);

        // A crash during an append leaves a partial record.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&10u32.to_le_bytes()).expect("write");
        f.write_all(b"par").expect("write");
        drop(f);
        let log = read_records(&path).expect("read");
        assert_eq!(log.records.len(), 3);
        assert_eq!(log.truncated_bytes, 7);
        append_record(&path, b"four").expect("append after repair");
        let log = read_records(&path).expect("read");
        assert_eq!(log.records.len(), 4);
        assert_eq!(log.records[3], Bytes::from_static(b"four"));
    }

    #[test]
    fn atomic_files_and_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x/slave.info");
        write_atomic(&path, b"v1").expect("write");
        write_atomic(&path, b"v2").expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"v2");
        let link = dir.path().join("x/latest");
        replace_symlink(Path::new("a"), &link).expect("link");
        replace_symlink(Path::new("b"), &link).expect("relink");
        assert_eq!(fs::read_link(&link).expect("readlink"), PathBuf::from("b"));
        assert!(read_text(&dir.path().join("missing"))
            .expect("missing is fine")
            .is_none());
        assert_eq!(
            read_records(&dir.path().join("none"))
                .expect("empty")
                .records
                .len(),
            0
        );
    }
}
