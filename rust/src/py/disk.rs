//! `simloom._core.DiskCore`: one simulated host's disk ([`crate::disk::Disk`]) as
//! Python sees it. `simloom.disk.Disk` wraps it; user code never sees this class.
//!
//! Owns: converting arguments to the model's types, the model's errors to the
//! exceptions the OS raises (`OSError(errno, strerror, filename)`, which Python
//! turns into `FileNotFoundError`, `FileExistsError`, ... by errno), and handing a
//! crash the universe's engine so its choices are on the tape.
//! Must not: decide anything (the model and the engine do) or keep Python objects.

use super::loop_core::LoopCore;
use crate::disk::{CrashReport, Disk, DiskError, Fd, OpenOptions};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::io::SeekFrom;

/// What a crash did, as plain data for `simloom.disk.CrashReport`:
/// `(story, unsynced directory entries, surviving ones, files)`; per file
/// `(path, unsynced ops, ops kept whole, (bytes kept, length) of a torn op or None)`.
type CrashSummary = (
    String,
    usize,
    usize,
    Vec<(String, usize, usize, Option<(usize, usize)>)>,
);

/// The model's error as the OS reports it. Errors about a path carry it as
/// `filename` (and `rename`'s target as `filename2`), so `str(error)` reads like the
/// stdlib's: `[Errno 2] No such file or directory: 'wal'`.
fn os_error(error: DiskError, filename2: Option<&str>) -> PyErr {
    let errno = error.errno();
    match &error {
        DiskError::NotFound { path } | DiskError::AlreadyExists { path } => match filename2 {
            Some(target) => PyOSError::new_err((
                errno,
                error.strerror(),
                path.clone(),
                Option::<i32>::None,
                target.to_string(),
            )),
            None => PyOSError::new_err((errno, error.strerror(), path.clone())),
        },
        _ => PyOSError::new_err((errno, error.to_string())),
    }
}

/// A path as `open()` and `os` functions take it: the empty path names no file, a
/// NUL byte is a `ValueError`. (The model calls both invalid arguments; the
/// stdlib's classes are what code under test catches.)
fn os_path(path: &str) -> PyResult<&str> {
    if path.is_empty() {
        return Err(PyFileNotFoundError::new_err((
            2,
            "No such file or directory",
            String::new(),
        )));
    }
    if path.contains('\0') {
        return Err(PyValueError::new_err("embedded null byte"));
    }
    Ok(path)
}

/// `os.lseek`'s and `ftruncate`'s EINVAL for a negative position or size.
fn non_negative(value: i64, what: &str) -> PyResult<u64> {
    u64::try_from(value).map_err(|_| {
        let reason = format!("negative {what} {value}");
        os_error(DiskError::InvalidArgument { reason }, None)
    })
}

fn summary(report: &CrashReport) -> CrashSummary {
    let files = report
        .files
        .iter()
        .map(|file| {
            (
                file.path.clone(),
                file.pending_ops,
                file.survived_ops,
                file.torn.map(|torn| (torn.kept, torn.len)),
            )
        })
        .collect();
    (
        report.to_string(),
        report.dir_pending,
        report.dir_survived,
        files,
    )
}

/// One host's disk: the model's operations with the OS's exceptions.
#[pyclass(module = "simloom._core")]
pub struct DiskCore {
    disk: Disk,
}

#[pymethods]
impl DiskCore {
    /// An empty disk; `capacity` bounds the bytes of file content (ENOSPC beyond).
    #[new]
    #[pyo3(signature = (capacity = None))]
    fn new(capacity: Option<u64>) -> DiskCore {
        DiskCore {
            disk: capacity.map_or_else(Disk::new, Disk::with_capacity),
        }
    }

    /// Open `path` with a Python `open()` mode; returns the handle's id. A mode that
    /// does not parse is a `ValueError`, as with `open()`.
    fn open(&mut self, path: &str, mode: &Bound<'_, PyString>) -> PyResult<u64> {
        let path = os_path(path)?;
        let options = match OpenOptions::parse(mode.to_str()?) {
            Ok(options) => options,
            Err(_) => {
                let message = format!("invalid mode: {}", mode.repr()?);
                return Err(PyValueError::new_err(message));
            }
        };
        let fd = self
            .disk
            .open(path, &options)
            .map_err(|e| os_error(e, None))?;
        Ok(fd.0)
    }

    fn close(&mut self, fd: u64) -> PyResult<()> {
        self.disk.close(Fd(fd)).map_err(|e| os_error(e, None))
    }

    /// Is the handle open? A crash closes every handle.
    fn is_open(&self, fd: u64) -> bool {
        self.disk.is_open(Fd(fd))
    }

    /// Up to `size` bytes from the handle's position; `None` reads to the end.
    #[pyo3(signature = (fd, size = None))]
    fn read<'py>(
        &mut self,
        py: Python<'py>,
        fd: u64,
        size: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self
            .disk
            .read(Fd(fd), size.unwrap_or(usize::MAX))
            .map_err(|e| os_error(e, None))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Write all of `data` (no short writes); returns its length.
    fn write(&mut self, fd: u64, data: &[u8]) -> PyResult<usize> {
        self.disk.write(Fd(fd), data).map_err(|e| os_error(e, None))
    }

    /// `os.lseek`: `whence` is 0 (from the start), 1 (from the position) or 2 (from
    /// the end); returns the new position.
    fn seek(&mut self, fd: u64, offset: i64, whence: i32) -> PyResult<u64> {
        let to = match whence {
            0 => SeekFrom::Start(non_negative(offset, "seek position")?),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "invalid whence ({whence}, should be 0, 1 or 2)"
                )))
            }
        };
        self.disk.seek(Fd(fd), to).map_err(|e| os_error(e, None))
    }

    /// `ftruncate`: cut or zero-extend the file to `size` bytes.
    fn truncate(&mut self, fd: u64, size: i64) -> PyResult<()> {
        let size = non_negative(size, "size")?;
        self.disk
            .truncate(Fd(fd), size)
            .map_err(|e| os_error(e, None))
    }

    fn fsync(&mut self, fd: u64) -> PyResult<()> {
        self.disk.fsync(Fd(fd)).map_err(|e| os_error(e, None))
    }

    fn fsync_dir(&mut self) {
        self.disk.fsync_dir();
    }

    fn sync(&mut self) {
        self.disk.sync();
    }

    fn rename(&mut self, src: &str, dst: &str) -> PyResult<()> {
        let (src, dst) = (os_path(src)?, os_path(dst)?);
        self.disk
            .rename(src, dst)
            .map_err(|e| os_error(e, Some(dst)))
    }

    fn delete(&mut self, path: &str) -> PyResult<()> {
        let path = os_path(path)?;
        self.disk.delete(path).map_err(|e| os_error(e, None))
    }

    #[pyo3(signature = (prefix = ""))]
    fn list(&self, prefix: &str) -> Vec<String> {
        self.disk.list(prefix)
    }

    fn exists(&self, path: &str) -> bool {
        self.disk.exists(path)
    }

    fn size(&self, path: &str) -> PyResult<u64> {
        self.disk
            .size(os_path(path)?)
            .map_err(|e| os_error(e, None))
    }

    /// The file's bytes as reads see them now.
    fn contents<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self
            .disk
            .contents(os_path(path)?)
            .map_err(|e| os_error(e, None))?;
        Ok(PyBytes::new(py, bytes))
    }

    fn used(&self) -> u64 {
        self.disk.used()
    }

    fn capacity(&self) -> Option<u64> {
        self.disk.capacity()
    }

    /// A power cut in the universe `loop_core` runs: its engine answers the model's
    /// questions, so the outcome is on the tape and in the event log. An error of
    /// the choice source ends the universe (see `LoopCore::fail_source`) and leaves
    /// the disk as it was.
    fn crash(&mut self, loop_core: &Bound<'_, LoopCore>) -> PyResult<CrashSummary> {
        let mut core = loop_core.try_borrow_mut()?;
        match self.disk.crash(core.engine_mut()) {
            Ok(report) => Ok(summary(&report)),
            Err(error) => Err(core.fail_source(loop_core.py(), error)),
        }
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<DiskCore>()
}
