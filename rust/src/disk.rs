//! The disk model: one simulated host's filesystem, in memory, and what a power cut
//! leaves of it.
//!
//! The promise is the one a real disk makes: **only fsynced state survives a crash**.
//! Everything else is *pending*, reads already see it, and [`Disk::crash`] decides
//! from the choice tape how much of it the power cut let through.
//!
//! Owns: file contents, the namespace, open handles and their positions, capacity,
//! and the crash outcome. Must not: touch Python, the clock, the ready set or the
//! tape directly; every decision goes through the [`Choices`] it is handed (the
//! engine in a universe, doubles in tests) and [`crate::choices::ask`], whose rules
//! hold here as everywhere (a bound below 2 is not asked; an answer out of range is
//! taken as 0 and reported misaligned). It has no randomness of its own.
//!
//! # State
//!
//! - A flat namespace: a path is any non-empty string without NUL, there are no
//!   directories to create, and [`Disk::list`] lists the paths under a prefix. The
//!   namespace is one directory as far as durability goes.
//! - Per file: its **durable** content (as of its last fsync), its **pending** data
//!   operations in issue order (`write(offset, bytes)` and `set_len(len)`), and its
//!   **visible** content (durable with every pending operation applied).
//! - The **directory journal**: pending namespace operations (create, rename,
//!   delete) in issue order, over the durable namespace.
//!
//! Reads, `size`, `exists` and `list` see the visible state.
//!
//! # Durability rules
//!
//! - [`Disk::fsync`] (a handle) makes the file's data durable, and the directory
//!   journal up to and including the last entry that created, renamed or deleted
//!   that file. The journal is committed in order, as a journaling filesystem does,
//!   so earlier entries come along. (Strict POSIX would also want the directory
//!   fsynced before a new name is promised; ext4 and XFS in practice commit it with
//!   the file, and code that fsyncs a file it just created is right on them, so the
//!   model does not report it.)
//! - [`Disk::fsync_dir`] makes the whole directory journal durable, not file data.
//! - [`Disk::sync`] makes everything durable.
//! - `close` promises nothing. A deleted file stays readable through handles still
//!   open on it.
//!
//! So `rename(tmp, path)` without a later `fsync_dir()` (or an fsync of the renamed
//! file) may be undone by a crash, and `create; write; fsync_dir()` without an fsync
//! of the file leaves an empty file.
//!
//! # Crash: choice labels and canonical values
//!
//! A crash closes every handle (their [`Fd`]s answer [`DiskError::IsClosed`] from
//! then on) and decides, before changing anything, so a source that fails part way
//! leaves the disk as it was:
//!
//! | label | bound | asked | value | canonical 0 |
//! |-------|-------|-------|-------|-------------|
//! | `disk.crash_dir` | pending entries + 1 | once, if the journal is not empty | how many journal entries survive, in order | none survives |
//! | `disk.crash` | pending ops + 1 | per file that has a name after the journal decision and pending data ops, oldest file first | how many of its pending ops survive whole, in order | none survives |
//! | `disk.torn_at` | length of the write | when the first lost op is a write of 2 bytes or more | how many of its first bytes survive | none: lost whole, not torn |
//!
//! Survival is a **prefix of the sequence**, per file and for the journal: the first
//! `k` pending ops survive, the next one may be torn, every later one is lost. A
//! later write never survives an earlier lost one. That is the model most recovery
//! code is written against (an append-only log whose tail is missing or cut), and it
//! explains a crash with one number per file. It is not the most adversarial model:
//! a real page cache can write back dirty pages out of order, which this model does
//! not produce.
//!
//! Every canonical value is "lost", so **an all-zero crash leaves exactly what was
//! fsynced**. Why "lost" rather than "flushed" for choice 0:
//!
//! - The canonical crash is then the contract itself. The commonest durability bug,
//!   a missing fsync, fails in the canonical universe and its minimal counterexample
//!   has no disk deviation at all: the rule the user already knows ("only fsynced
//!   data survives") is the whole explanation. With "flushed" as canonical a crash
//!   would behave like a clean shutdown, and a missing fsync could only be found
//!   and reported through deviations.
//! - Shrinking lowers values and drops deviations, so it moves toward *less
//!   surviving luck*: what is left in a minimal counterexample is exactly the
//!   unsynced state the code mishandled ("the first 2 of 5 unsynced ops of /wal
//!   survived, the 3rd torn after 7 of 12 bytes"). Values grow with how much
//!   survived, so a smaller value is always the simpler story.
//! - A count per file instead of a flag per write keeps the number of decisions
//!   almost independent of their values (only the tear question comes and goes),
//!   so shrinking one value does not shift the index of every later decision.
//!
//! In seeded universes `disk.crash` and `disk.crash_dir` are uniform over their
//! range, and half the interrupted writes of 2 bytes or more tear ([`TORN_PERCENT`]),
//! at a uniform byte. A decision is asked only where there is a real alternative:
//! no pending state, no question; a bound below 2 is never asked.
//!
//! # Capacity
//!
//! With a capacity, the bytes of every file that has a name or an open handle
//! (visible sizes) must fit. A write or `set_len` that would grow past it fails with
//! [`DiskError::NoSpace`] and changes nothing (no short writes). Shrinking and
//! deleting free space at once. A crash can bring back a file whose delete was lost,
//! so a disk can come back over capacity; it then refuses to grow until space is
//! freed.

use crate::choices::{ask, Choices};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::SeekFrom;

/// How many unsynced directory entries survive a crash (canonical 0: none).
pub const CRASH_DIR_LABEL: &str = "disk.crash_dir";
/// How many unsynced data ops of one file survive a crash (canonical 0: none).
pub const CRASH_LABEL: &str = "disk.crash";
/// How many bytes of a file's first lost write survive (canonical 0: none, no tear).
pub const TORN_LABEL: &str = "disk.torn_at";
/// Chance that a seeded universe tears an interrupted write.
pub const TORN_PERCENT: u32 = 50;
/// Largest file the model holds (EFBIG beyond), so a stray offset cannot exhaust
/// the memory of the process running the simulation.
pub const MAX_FILE_SIZE: u64 = 1 << 32;

/// An open file handle. Ids are never reused, so a handle from before a crash or a
/// close stays closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fd(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskError {
    /// ENOENT: no file at this path.
    NotFound { path: String },
    /// EEXIST: exclusive create of a path that exists.
    AlreadyExists { path: String },
    /// ENOSPC: the operation needed `requested` more bytes, `available` were free.
    NoSpace { requested: u64, available: u64 },
    /// EFBIG: the file would grow past [`MAX_FILE_SIZE`].
    FileTooLarge { size: u64 },
    /// EBADF: the handle was closed (or the host crashed since it was opened).
    IsClosed { fd: Fd },
    /// EBADF: a read on a handle not opened for reading.
    NotReadable { fd: Fd },
    /// EBADF: a write, truncate or fsync-for-writing on a handle not opened for writing.
    NotWritable { fd: Fd },
    /// EINVAL: a bad path, open mode or seek.
    InvalidArgument { reason: String },
}

impl DiskError {
    /// The Linux errno an `OSError` for this error carries.
    pub fn errno(&self) -> i32 {
        match self {
            DiskError::NotFound { .. } => 2,
            DiskError::AlreadyExists { .. } => 17,
            DiskError::NoSpace { .. } => 28,
            DiskError::FileTooLarge { .. } => 27,
            DiskError::IsClosed { .. }
            | DiskError::NotReadable { .. }
            | DiskError::NotWritable { .. } => 9,
            DiskError::InvalidArgument { .. } => 22,
        }
    }

    /// The C library's text for [`DiskError::errno`] (`strerror`), without detail.
    pub fn strerror(&self) -> &'static str {
        match self {
            DiskError::NotFound { .. } => "No such file or directory",
            DiskError::AlreadyExists { .. } => "File exists",
            DiskError::NoSpace { .. } => "No space left on device",
            DiskError::FileTooLarge { .. } => "File too large",
            DiskError::IsClosed { .. }
            | DiskError::NotReadable { .. }
            | DiskError::NotWritable { .. } => "Bad file descriptor",
            DiskError::InvalidArgument { .. } => "Invalid argument",
        }
    }

    fn invalid(reason: impl Into<String>) -> DiskError {
        DiskError::InvalidArgument {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let strerror = self.strerror();
        match self {
            DiskError::NotFound { path } | DiskError::AlreadyExists { path } => {
                write!(f, "{strerror}: {path:?}")
            }
            DiskError::NoSpace {
                requested,
                available,
            } => write!(
                f,
                "{strerror}: {requested} bytes requested, {available} free"
            ),
            DiskError::FileTooLarge { size } => {
                write!(f, "{strerror}: {size} bytes (limit {MAX_FILE_SIZE})")
            }
            DiskError::IsClosed { fd } => write!(f, "{strerror}: {} is closed", fd.0),
            DiskError::NotReadable { fd } => {
                write!(f, "{strerror}: {} is not open for reading", fd.0)
            }
            DiskError::NotWritable { fd } => {
                write!(f, "{strerror}: {} is not open for writing", fd.0)
            }
            DiskError::InvalidArgument { reason } => write!(f, "{strerror}: {reason}"),
        }
    }
}

impl std::error::Error for DiskError {}

/// How to open a file, as in `std::fs::OpenOptions`; [`OpenOptions::parse`] reads a
/// Python `open()` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    pub read: bool,
    pub write: bool,
    /// Every write goes to the end of the file (implies `write`).
    pub append: bool,
    /// Create the file if it is missing.
    pub create: bool,
    /// Cut an existing file to length 0 (needs `write`).
    pub truncate: bool,
    /// Create the file, failing with `AlreadyExists` if it exists.
    pub create_new: bool,
}

impl OpenOptions {
    /// A Python `open()` mode: one of `r w a x`, optionally `+`, and `b` or `t` (the
    /// disk holds bytes; text is the caller's business).
    pub fn parse(mode: &str) -> Result<OpenOptions, DiskError> {
        let bad = || DiskError::invalid(format!("invalid mode: {mode:?}"));
        let mut options = OpenOptions::default();
        let (mut kind, mut plus, mut binary_or_text) = (None, false, false);
        for c in mode.chars() {
            match c {
                'r' | 'w' | 'a' | 'x' if kind.is_none() => kind = Some(c),
                '+' if !plus => plus = true,
                'b' | 't' if !binary_or_text => binary_or_text = true,
                _ => return Err(bad()),
            }
        }
        match kind.ok_or_else(bad)? {
            'r' => options.read = true,
            'w' => {
                options.write = true;
                options.create = true;
                options.truncate = true;
            }
            'a' => {
                options.append = true;
                options.create = true;
            }
            _ => options.create_new = true,
        }
        if plus {
            options.read = true;
            options.write = true;
        }
        if options.append || options.create_new {
            options.write = true;
        }
        Ok(options)
    }

    fn writable(&self) -> bool {
        self.write || self.append
    }

    fn validate(&self) -> Result<(), DiskError> {
        if !self.read && !self.writable() {
            return Err(DiskError::invalid("open for neither reading nor writing"));
        }
        if (self.create || self.create_new || self.truncate) && !self.writable() {
            return Err(DiskError::invalid(
                "create or truncate needs the file open for writing",
            ));
        }
        if self.truncate && self.append {
            return Err(DiskError::invalid("truncate and append together"));
        }
        Ok(())
    }
}

/// What one crash let through, for the event log and the failure report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CrashReport {
    /// Unsynced directory entries before the crash, and how many survived.
    pub dir_pending: usize,
    pub dir_survived: usize,
    /// Every surviving file that had unsynced data ops, oldest file first.
    pub files: Vec<FileCrash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCrash {
    pub path: String,
    pub pending_ops: usize,
    /// The first `survived_ops` pending ops survived whole.
    pub survived_ops: usize,
    /// The op after them, when its first bytes survived.
    pub torn: Option<TornWrite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornWrite {
    pub kept: usize,
    pub len: usize,
}

impl CrashReport {
    /// Did the crash leave exactly the fsynced state (every choice canonical)?
    pub fn is_canonical(&self) -> bool {
        self.dir_survived == 0
            && self
                .files
                .iter()
                .all(|file| file.survived_ops == 0 && file.torn.is_none())
    }
}

impl fmt::Display for CrashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dir_pending == 0 && self.files.is_empty() {
            return write!(f, "crash: nothing was unsynced");
        }
        write!(f, "crash:")?;
        if self.dir_pending > 0 {
            write!(
                f,
                "\n  directory: {} of {} unsynced entries survived",
                self.dir_survived, self.dir_pending
            )?;
        }
        for file in &self.files {
            write!(
                f,
                "\n  {}: {} of {} unsynced ops survived",
                file.path, file.survived_ops, file.pending_ops
            )?;
            if let Some(torn) = file.torn {
                write!(
                    f,
                    ", op #{} torn after {} of {} bytes",
                    file.survived_ops + 1,
                    torn.kept,
                    torn.len
                )?;
            }
        }
        Ok(())
    }
}

type InodeId = u64;

/// One pending change to a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DataOp {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl DataOp {
    /// Writes past the end fill the gap with zeros. Sizes were checked against
    /// [`MAX_FILE_SIZE`] when the op was issued.
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            DataOp::Write { offset, bytes } => {
                let start = *offset as usize;
                let end = start + bytes.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[start..end].copy_from_slice(bytes);
            }
            DataOp::SetLen(len) => content.resize(*len as usize, 0),
        }
    }
}

/// One pending change to the namespace; `inode` is the file it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DirOp {
    Create {
        path: String,
        inode: InodeId,
    },
    Rename {
        from: String,
        to: String,
        inode: InodeId,
    },
    Delete {
        path: String,
        inode: InodeId,
    },
}

impl DirOp {
    fn inode(&self) -> InodeId {
        match self {
            DirOp::Create { inode, .. }
            | DirOp::Rename { inode, .. }
            | DirOp::Delete { inode, .. } => *inode,
        }
    }

    /// Replaying the journal in order on the durable namespace retraces the visible
    /// namespace's history, so every op applies as it did when it was issued.
    fn apply(&self, names: &mut BTreeMap<String, InodeId>) {
        match self {
            DirOp::Create { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            DirOp::Rename { from, to, inode } => {
                names.remove(from);
                names.insert(to.clone(), *inode);
            }
            DirOp::Delete { path, .. } => {
                names.remove(path);
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    pending: Vec<DataOp>,
    /// `durable` with every pending op applied: what reads see.
    visible: Vec<u8>,
}

impl Inode {
    fn record(&mut self, op: DataOp) {
        op.apply(&mut self.visible);
        self.pending.push(op);
    }

    fn make_durable(&mut self) {
        if !self.pending.is_empty() {
            self.durable.clone_from(&self.visible);
            self.pending.clear();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Handle {
    inode: InodeId,
    position: u64,
    readable: bool,
    writable: bool,
    append: bool,
}

/// One host's disk. Deterministic: the same calls and the same choices give the
/// same state, byte for byte.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    capacity: Option<u64>,
    /// The namespace reads see.
    names: BTreeMap<String, InodeId>,
    /// The namespace a crash falls back to.
    durable_names: BTreeMap<String, InodeId>,
    /// Pending namespace ops, oldest first; `durable_names` + all of them = `names`.
    journal: Vec<DirOp>,
    inodes: BTreeMap<InodeId, Inode>,
    handles: BTreeMap<Fd, Handle>,
    next_inode: InodeId,
    next_fd: u64,
}

impl Disk {
    /// An empty disk of unlimited size.
    pub fn new() -> Disk {
        Disk::default()
    }

    /// An empty disk holding at most `bytes` bytes of file content.
    pub fn with_capacity(bytes: u64) -> Disk {
        Disk {
            capacity: Some(bytes),
            ..Disk::default()
        }
    }

    pub fn capacity(&self) -> Option<u64> {
        self.capacity
    }

    /// Bytes held by files that have a name or an open handle (visible sizes).
    pub fn used(&self) -> u64 {
        let in_use: BTreeSet<InodeId> = self
            .names
            .values()
            .copied()
            .chain(self.handles.values().map(|handle| handle.inode))
            .collect();
        in_use
            .iter()
            .map(|id| self.inodes[id].visible.len() as u64)
            .sum()
    }

    // --- handles -------------------------------------------------------------

    pub fn open(&mut self, path: &str, options: &OpenOptions) -> Result<Fd, DiskError> {
        options.validate()?;
        check_path(path)?;
        let inode = match self.names.get(path) {
            Some(_) if options.create_new => {
                return Err(DiskError::AlreadyExists {
                    path: path.to_string(),
                })
            }
            Some(&inode) => {
                if options.truncate {
                    self.set_inode_len(inode, 0)?;
                }
                inode
            }
            None if options.create || options.create_new => {
                let inode = self.next_inode;
                self.next_inode += 1;
                self.inodes.insert(inode, Inode::default());
                self.names.insert(path.to_string(), inode);
                self.journal.push(DirOp::Create {
                    path: path.to_string(),
                    inode,
                });
                inode
            }
            None => {
                return Err(DiskError::NotFound {
                    path: path.to_string(),
                })
            }
        };
        let fd = Fd(self.next_fd);
        self.next_fd += 1;
        let position = if options.append {
            self.inodes[&inode].visible.len() as u64
        } else {
            0
        };
        self.handles.insert(
            fd,
            Handle {
                inode,
                position,
                readable: options.read,
                writable: options.writable(),
                append: options.append,
            },
        );
        Ok(fd)
    }

    /// Is `fd` open? Handles close by [`Disk::close`] and all at once by a crash.
    pub fn is_open(&self, fd: Fd) -> bool {
        self.handles.contains_key(&fd)
    }

    /// Close a handle. Closing promises nothing about durability.
    pub fn close(&mut self, fd: Fd) -> Result<(), DiskError> {
        self.handles.remove(&fd).ok_or(DiskError::IsClosed { fd })?;
        self.collect_garbage();
        Ok(())
    }

    /// Up to `max_len` bytes from the handle's position (fewer at the end of the
    /// file, none past it); the position moves past them.
    pub fn read(&mut self, fd: Fd, max_len: usize) -> Result<Vec<u8>, DiskError> {
        let handle = self.handle(fd)?;
        if !handle.readable {
            return Err(DiskError::NotReadable { fd });
        }
        let content = &self.inodes[&handle.inode].visible;
        let start = (handle.position.min(content.len() as u64)) as usize;
        let end = start + max_len.min(content.len() - start);
        let bytes = content[start..end].to_vec();
        self.handle_mut(fd)?.position = handle.position.max(end as u64);
        Ok(bytes)
    }

    /// Write all of `bytes` at the handle's position (at the end in append mode),
    /// past the end zero-filling the gap. Pending until fsynced; reads see it now.
    pub fn write(&mut self, fd: Fd, bytes: &[u8]) -> Result<usize, DiskError> {
        let handle = self.handle(fd)?;
        if !handle.writable {
            return Err(DiskError::NotWritable { fd });
        }
        let offset = if handle.append {
            self.inodes[&handle.inode].visible.len() as u64
        } else {
            handle.position
        };
        if bytes.is_empty() {
            return Ok(0);
        }
        let end = offset.saturating_add(bytes.len() as u64);
        self.reserve(handle.inode, end)?;
        self.inodes
            .get_mut(&handle.inode)
            .expect("open inode")
            .record(DataOp::Write {
                offset,
                bytes: bytes.to_vec(),
            });
        self.handle_mut(fd)?.position = end;
        Ok(bytes.len())
    }

    /// Move the handle's position; returns it. Past the end is allowed, before the
    /// start is not.
    pub fn seek(&mut self, fd: Fd, to: SeekFrom) -> Result<u64, DiskError> {
        let handle = self.handle(fd)?;
        let len = self.inodes[&handle.inode].visible.len() as u64;
        let (base, delta) = match to {
            SeekFrom::Start(position) => (position, 0),
            SeekFrom::End(delta) => (len, delta),
            SeekFrom::Current(delta) => (handle.position, delta),
        };
        let position = base
            .checked_add_signed(delta)
            .ok_or_else(|| DiskError::invalid("seek before the start of the file"))?;
        self.handle_mut(fd)?.position = position;
        Ok(position)
    }

    /// Cut or zero-extend the file to `len` bytes (`ftruncate`); the position stays.
    pub fn truncate(&mut self, fd: Fd, len: u64) -> Result<(), DiskError> {
        let handle = self.handle(fd)?;
        if !handle.writable {
            return Err(DiskError::NotWritable { fd });
        }
        self.set_inode_len(handle.inode, len)
    }

    /// Make the file's data durable, and the directory journal up to its last entry
    /// about this file (see the module doc).
    pub fn fsync(&mut self, fd: Fd) -> Result<(), DiskError> {
        let handle = self.handle(fd)?;
        self.inodes
            .get_mut(&handle.inode)
            .expect("open inode")
            .make_durable();
        if let Some(last) = self
            .journal
            .iter()
            .rposition(|op| op.inode() == handle.inode)
        {
            self.commit_journal(last + 1);
        }
        Ok(())
    }

    // --- paths ---------------------------------------------------------------

    /// Make every pending create, rename and delete durable (the model has one
    /// directory). File data stays pending.
    pub fn fsync_dir(&mut self) {
        self.commit_journal(self.journal.len());
    }

    /// Make everything durable.
    pub fn sync(&mut self) {
        for inode in self.inodes.values_mut() {
            inode.make_durable();
        }
        self.fsync_dir();
    }

    /// Rename `from` to `to`, replacing any file at `to`. Pending until the directory
    /// journal is committed.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), DiskError> {
        check_path(from)?;
        check_path(to)?;
        let inode = *self.names.get(from).ok_or_else(|| DiskError::NotFound {
            path: from.to_string(),
        })?;
        if from == to {
            return Ok(());
        }
        let op = DirOp::Rename {
            from: from.to_string(),
            to: to.to_string(),
            inode,
        };
        op.apply(&mut self.names);
        self.journal.push(op);
        self.collect_garbage();
        Ok(())
    }

    /// Remove the name `path`. Handles open on the file keep working. Pending until
    /// the directory journal is committed.
    pub fn delete(&mut self, path: &str) -> Result<(), DiskError> {
        check_path(path)?;
        let inode = *self.names.get(path).ok_or_else(|| DiskError::NotFound {
            path: path.to_string(),
        })?;
        let op = DirOp::Delete {
            path: path.to_string(),
            inode,
        };
        op.apply(&mut self.names);
        self.journal.push(op);
        self.collect_garbage();
        Ok(())
    }

    /// Every path starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.names
            .range(prefix.to_string()..)
            .take_while(|(path, _)| path.starts_with(prefix))
            .map(|(path, _)| path.clone())
            .collect()
    }

    pub fn exists(&self, path: &str) -> bool {
        self.names.contains_key(path)
    }

    pub fn size(&self, path: &str) -> Result<u64, DiskError> {
        Ok(self.inode_at(path)?.visible.len() as u64)
    }

    /// The file's bytes as reads see them now (for checkers and test assertions;
    /// code under test reads through a handle).
    pub fn contents(&self, path: &str) -> Result<&[u8], DiskError> {
        Ok(&self.inode_at(path)?.visible)
    }

    // --- crash ---------------------------------------------------------------

    /// A power cut: every handle closes and the pending state is cut to what the
    /// choices let through (see the module doc). Decides everything before changing
    /// anything, so an error from `choices` leaves the disk untouched.
    pub fn crash<C: Choices + ?Sized>(&mut self, choices: &mut C) -> Result<CrashReport, C::Error> {
        let dir_pending = self.journal.len();
        let dir_survived = ask(choices, CRASH_DIR_LABEL, dir_pending as u64 + 1, None)? as usize;
        let mut names = self.durable_names.clone();
        for op in &self.journal[..dir_survived] {
            op.apply(&mut names);
        }
        // Without hard links a file has at most one name; oldest file first.
        let named: BTreeMap<InodeId, &String> = names.iter().map(|(p, id)| (*id, p)).collect();
        let mut files = Vec::new();
        let mut cuts = Vec::new();
        for (&id, path) in &named {
            let pending = &self.inodes[&id].pending;
            if pending.is_empty() {
                continue;
            }
            let survived = ask(choices, CRASH_LABEL, pending.len() as u64 + 1, None)? as usize;
            let torn = match pending.get(survived) {
                Some(DataOp::Write { bytes, .. }) => {
                    let kept = ask(choices, TORN_LABEL, bytes.len() as u64, Some(TORN_PERCENT))?;
                    (kept > 0).then_some(TornWrite {
                        kept: kept as usize,
                        len: bytes.len(),
                    })
                }
                _ => None,
            };
            files.push(FileCrash {
                path: (*path).clone(),
                pending_ops: pending.len(),
                survived_ops: survived,
                torn,
            });
            cuts.push((id, survived, torn));
        }

        for (id, survived, torn) in cuts {
            let inode = self.inodes.get_mut(&id).expect("named inode");
            let mut content = std::mem::take(&mut inode.durable);
            for op in &inode.pending[..survived] {
                op.apply(&mut content);
            }
            if let (Some(torn), Some(DataOp::Write { offset, bytes })) =
                (torn, inode.pending.get(survived))
            {
                DataOp::Write {
                    offset: *offset,
                    bytes: bytes[..torn.kept].to_vec(),
                }
                .apply(&mut content);
            }
            inode.durable = content;
        }
        for (id, inode) in self.inodes.iter_mut() {
            if named.contains_key(id) {
                inode.pending.clear();
                inode.visible.clone_from(&inode.durable);
            }
        }
        self.durable_names.clone_from(&names);
        self.names = names;
        self.journal.clear();
        self.handles.clear();
        self.collect_garbage();
        Ok(CrashReport {
            dir_pending,
            dir_survived,
            files,
        })
    }

    // --- internals -----------------------------------------------------------

    fn handle(&self, fd: Fd) -> Result<Handle, DiskError> {
        self.handles
            .get(&fd)
            .copied()
            .ok_or(DiskError::IsClosed { fd })
    }

    fn handle_mut(&mut self, fd: Fd) -> Result<&mut Handle, DiskError> {
        self.handles.get_mut(&fd).ok_or(DiskError::IsClosed { fd })
    }

    fn inode_at(&self, path: &str) -> Result<&Inode, DiskError> {
        let id = self.names.get(path).ok_or_else(|| DiskError::NotFound {
            path: path.to_string(),
        })?;
        Ok(&self.inodes[id])
    }

    /// Check that file `id` may grow (or shrink) to `new_len` bytes.
    fn reserve(&self, id: InodeId, new_len: u64) -> Result<(), DiskError> {
        if new_len > MAX_FILE_SIZE {
            return Err(DiskError::FileTooLarge { size: new_len });
        }
        let old_len = self.inodes[&id].visible.len() as u64;
        if let Some(capacity) = self.capacity {
            let requested = new_len.saturating_sub(old_len);
            let available = capacity.saturating_sub(self.used());
            if requested > available {
                return Err(DiskError::NoSpace {
                    requested,
                    available,
                });
            }
        }
        Ok(())
    }

    fn set_inode_len(&mut self, id: InodeId, len: u64) -> Result<(), DiskError> {
        self.reserve(id, len)?;
        let inode = self.inodes.get_mut(&id).expect("live inode");
        // A no-op stays off the pending list: it would be a crash question with no
        // real alternative.
        if inode.visible.len() as u64 != len {
            inode.record(DataOp::SetLen(len));
        }
        Ok(())
    }

    fn commit_journal(&mut self, count: usize) {
        for op in self.journal.drain(..count) {
            op.apply(&mut self.durable_names);
        }
        self.collect_garbage();
    }

    /// Forget files no name (visible, durable or pending) and no handle refers to.
    fn collect_garbage(&mut self) {
        let referenced: BTreeSet<InodeId> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .chain(self.journal.iter().map(DirOp::inode))
            .chain(self.handles.values().map(|handle| handle.inode))
            .collect();
        self.inodes.retain(|id, _| referenced.contains(id));
    }
}

fn check_path(path: &str) -> Result<(), DiskError> {
    if path.is_empty() {
        return Err(DiskError::invalid("empty path"));
    }
    if path.contains('\0') {
        return Err(DiskError::invalid(format!("NUL byte in path {path:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choices::doubles::{Canonical, FailsAt, Lcg, OutOfRange, Scripted, SOURCE_RAISED};
    use crate::engine::{Engine, Source};
    use crate::strategy::StrategyKind;

    fn mode(mode: &str) -> OpenOptions {
        OpenOptions::parse(mode).unwrap()
    }

    /// Create or replace `path` with `bytes` and fsync it.
    fn put_synced(disk: &mut Disk, path: &str, bytes: &[u8]) {
        let fd = disk.open(path, &mode("wb")).unwrap();
        disk.write(fd, bytes).unwrap();
        disk.fsync(fd).unwrap();
        disk.close(fd).unwrap();
    }

    /// Create or replace `path` with `bytes`, without fsync.
    fn put_unsynced(disk: &mut Disk, path: &str, bytes: &[u8]) {
        let fd = disk.open(path, &mode("wb")).unwrap();
        disk.write(fd, bytes).unwrap();
        disk.close(fd).unwrap();
    }

    fn append(disk: &mut Disk, path: &str, bytes: &[u8]) {
        let fd = disk.open(path, &mode("ab")).unwrap();
        disk.write(fd, bytes).unwrap();
        disk.close(fd).unwrap();
    }

    fn text(disk: &Disk, path: &str) -> String {
        String::from_utf8(disk.contents(path).unwrap().to_vec()).unwrap()
    }

    fn snapshot(disk: &Disk) -> BTreeMap<String, Vec<u8>> {
        disk.list("")
            .into_iter()
            .map(|path| {
                let bytes = disk.contents(&path).unwrap().to_vec();
                (path, bytes)
            })
            .collect()
    }

    fn asked(labels: &[(&str, u64)]) -> Vec<(String, u64)> {
        labels.iter().map(|(l, b)| (l.to_string(), *b)).collect()
    }

    #[test]
    fn reads_see_unsynced_writes_before_a_crash() {
        let mut disk = Disk::new();
        let fd = disk.open("log", &mode("w+b")).unwrap();
        disk.write(fd, b"hello").unwrap();
        disk.seek(fd, SeekFrom::Start(0)).unwrap();
        assert_eq!(disk.read(fd, 100).unwrap(), b"hello");
        assert_eq!(disk.size("log").unwrap(), 5);
        assert!(disk.exists("log"));
        assert_eq!(disk.list(""), vec!["log".to_string()]);
        disk.crash(&mut Canonical::default()).unwrap();
        assert!(!disk.exists("log"), "nothing about it was ever synced");
    }

    #[test]
    fn an_all_zero_crash_leaves_exactly_the_fsynced_state() {
        let mut disk = Disk::new();
        put_synced(&mut disk, "kept", b"hello");
        put_synced(&mut disk, "doomed", b"x");
        put_synced(&mut disk, "moved", b"m");
        let empty = disk.open("empty", &mode("wb")).unwrap();
        disk.fsync_dir();
        // Unsynced: an overwrite and an append, a new file, a delete, two renames, and
        // data for a file whose create is durable.
        let fd = disk.open("kept", &mode("r+b")).unwrap();
        disk.write(fd, b"J").unwrap();
        disk.close(fd).unwrap();
        append(&mut disk, "kept", b" world");
        put_unsynced(&mut disk, "new", b"fresh");
        disk.delete("doomed").unwrap();
        disk.rename("moved", "elsewhere").unwrap();
        disk.rename("new", "new2").unwrap();
        disk.write(empty, b"lost").unwrap();
        assert_eq!(text(&disk, "kept"), "Jello world");
        assert_eq!(disk.list(""), ["elsewhere", "empty", "kept", "new2"]);

        let mut zeros = Canonical::default();
        let report = disk.crash(&mut zeros).unwrap();
        assert!(report.is_canonical());
        let expected: BTreeMap<String, Vec<u8>> = [
            ("doomed", &b"x"[..]),
            ("empty", b""),
            ("kept", b"hello"),
            ("moved", b"m"),
        ]
        .into_iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
        assert_eq!(snapshot(&disk), expected);
        // One journal question (4 entries pending), then each named file with
        // pending data, oldest first: "kept" (2 ops), "empty" (1 op).
        assert_eq!(
            zeros.record.asked,
            asked(&[
                ("disk.crash_dir", 5),
                ("disk.crash", 3),
                ("disk.crash", 2),
                ("disk.torn_at", 4)
            ])
        );
    }

    #[test]
    fn nothing_pending_asks_nothing() {
        let mut disk = Disk::new();
        put_synced(&mut disk, "a", b"data");
        disk.fsync_dir();
        let mut zeros = Canonical::default();
        let report = disk.crash(&mut zeros).unwrap();
        assert!(zeros.record.asked.is_empty());
        assert_eq!(report, CrashReport::default());
        assert_eq!(report.to_string(), "crash: nothing was unsynced");
        assert_eq!(text(&disk, "a"), "data");
    }

    /// "base" synced, then three unsynced appends of 4 bytes.
    fn three_pending_appends() -> Disk {
        let mut disk = Disk::new();
        put_synced(&mut disk, "wal", b"base");
        for chunk in [b"AAAA", b"BBBB", b"CCCC"] {
            append(&mut disk, "wal", chunk);
        }
        disk
    }

    #[test]
    fn scripted_choices_lose_flush_or_tear_the_unsynced_writes() {
        let cases: [(&[u64], &str, Option<TornWrite>); 6] = [
            (&[0, 0], "base", None),
            (&[0, 3], "baseAAA", Some(TornWrite { kept: 3, len: 4 })),
            (&[1, 0], "baseAAAA", None),
            (&[1, 2], "baseAAAABB", Some(TornWrite { kept: 2, len: 4 })),
            (
                &[2, 1],
                "baseAAAABBBBC",
                Some(TornWrite { kept: 1, len: 4 }),
            ),
            (&[3], "baseAAAABBBBCCCC", None),
        ];
        for (answers, expected, torn) in cases {
            let mut disk = three_pending_appends();
            let mut script = Scripted::new(answers);
            let report = disk.crash(&mut script).unwrap();
            assert_eq!(text(&disk, "wal"), expected, "answers {answers:?}");
            assert_eq!(report.files.len(), 1);
            assert_eq!(report.files[0].survived_ops, answers[0] as usize);
            assert_eq!(report.files[0].torn, torn);
            let mut expected_asked = vec![("disk.crash".to_string(), 4)];
            if answers[0] < 3 {
                expected_asked.push(("disk.torn_at".to_string(), 4));
            }
            assert_eq!(script.record.asked, expected_asked);
            // The crash is over: what is there now is durable.
            disk.crash(&mut Lcg(7)).unwrap();
            assert_eq!(text(&disk, "wal"), expected);
        }
    }

    #[test]
    fn a_later_write_never_survives_an_earlier_lost_one() {
        // Overwrites of one region, so every outcome shows which writes survived.
        let mut disk = Disk::new();
        put_synced(&mut disk, "f", b"000000");
        for (offset, bytes) in [(0, &b"1"[..]), (0, b"222"), (2, b"3333")] {
            let fd = disk.open("f", &mode("r+b")).unwrap();
            disk.seek(fd, SeekFrom::Start(offset)).unwrap();
            disk.write(fd, bytes).unwrap();
            disk.close(fd).unwrap();
        }
        assert_eq!(text(&disk, "f"), "223333");
        let mut outcomes = BTreeSet::new();
        for survived in 0..=3 {
            for torn_at in 0..4 {
                let mut copy = disk.clone();
                copy.crash(&mut Scripted::new(&[survived, torn_at]))
                    .unwrap();
                outcomes.insert(text(&copy, "f"));
            }
        }
        let expected: BTreeSet<String> = [
            "000000", // none survived (write #1 is 1 byte: it cannot tear)
            "100000", // #1
            "200000", "220000", // #1, #2 torn
            "222000", // #1, #2
            "223000", "223300", "223330", // #1, #2, #3 torn
            "223333", // all
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(outcomes, expected);
    }

    #[test]
    fn a_one_byte_write_is_never_asked_about_tearing() {
        let mut disk = Disk::new();
        put_synced(&mut disk, "f", b"");
        append(&mut disk, "f", b"x");
        let mut zeros = Canonical::default();
        disk.crash(&mut zeros).unwrap();
        assert_eq!(zeros.record.asked, asked(&[("disk.crash", 2)]));
    }

    /// Independent oracle: every content a crash may leave, given the durable
    /// content and the pending (offset, bytes) writes or (length, None) truncations.
    fn possible_outcomes(durable: &[u8], pending: &[(u64, Option<Vec<u8>>)]) -> Vec<Vec<u8>> {
        fn apply(content: &mut Vec<u8>, op: &(u64, Option<Vec<u8>>)) {
            match op {
                (offset, Some(bytes)) => {
                    let start = *offset as usize;
                    if content.len() < start + bytes.len() {
                        content.resize(start + bytes.len(), 0);
                    }
                    content[start..start + bytes.len()].copy_from_slice(bytes);
                }
                (len, None) => content.resize(*len as usize, 0),
            }
        }
        let mut outcomes = Vec::new();
        let mut content = durable.to_vec();
        for op in pending {
            outcomes.push(content.clone());
            if let (offset, Some(bytes)) = op {
                for kept in 1..bytes.len() {
                    let mut torn = content.clone();
                    apply(&mut torn, &(*offset, Some(bytes[..kept].to_vec())));
                    outcomes.push(torn);
                }
            }
            apply(&mut content, op);
        }
        outcomes.push(content);
        outcomes
    }

    #[test]
    fn fsynced_data_survives_every_crash_choice() {
        for seed in 0..400 {
            let mut program = Lcg(seed);
            let mut disk = Disk::new();
            let paths = ["log", "data"];
            // Synced files with a durable name, and the test's own mirror of them.
            let mut durable: Vec<Vec<u8>> = vec![Vec::new(); 2];
            let mut pending: Vec<Vec<(u64, Option<Vec<u8>>)>> = vec![Vec::new(); 2];
            let fds: Vec<Fd> = paths
                .iter()
                .map(|path| disk.open(path, &mode("w+b")).unwrap())
                .collect();
            disk.fsync_dir();
            for _ in 0..program.below(12) {
                let file = program.below(2) as usize;
                let fd = fds[file];
                let size = disk.size(paths[file]).unwrap();
                match program.below(5) {
                    0 | 1 => {
                        let offset = program.below(size + 3);
                        let bytes = program.bytes(6);
                        disk.seek(fd, SeekFrom::Start(offset)).unwrap();
                        disk.write(fd, &bytes).unwrap();
                        if !bytes.is_empty() {
                            pending[file].push((offset, Some(bytes)));
                        }
                    }
                    2 => {
                        let len = program.below(size + 3);
                        disk.truncate(fd, len).unwrap();
                        if len != size {
                            pending[file].push((len, None));
                        }
                    }
                    _ => {
                        disk.fsync(fd).unwrap();
                        durable[file] = disk.contents(paths[file]).unwrap().to_vec();
                        pending[file].clear();
                    }
                }
            }
            disk.crash(&mut Lcg(seed ^ 0xd15c)).unwrap();
            for (file, path) in paths.iter().enumerate() {
                let after = disk.contents(path).unwrap().to_vec();
                let outcomes = possible_outcomes(&durable[file], &pending[file]);
                assert!(
                    outcomes.contains(&after),
                    "seed {seed}: {path} = {after:?}, not durable + a prefix of {:?}",
                    pending[file]
                );
                if pending[file].is_empty() {
                    assert_eq!(after, durable[file], "seed {seed}: fsynced {path} changed");
                }
            }
        }
    }

    #[test]
    fn rename_is_durable_after_fsync_dir_or_an_fsync_of_the_file() {
        // The atomic-replace pattern: write tmp, fsync it, rename it over the target.
        let setup = || {
            let mut disk = Disk::new();
            put_synced(&mut disk, "config", b"old");
            disk.fsync_dir();
            let fd = disk.open("config.tmp", &mode("wb")).unwrap();
            disk.write(fd, b"new").unwrap();
            disk.fsync(fd).unwrap();
            disk.rename("config.tmp", "config").unwrap();
            (disk, fd)
        };

        let (mut disk, _) = setup();
        disk.crash(&mut Canonical::default()).unwrap();
        assert_eq!(
            text(&disk, "config"),
            "old",
            "the rename was never made durable"
        );
        assert_eq!(
            text(&disk, "config.tmp"),
            "new",
            "its create came with its fsync"
        );

        let (mut disk, _) = setup();
        disk.fsync_dir();
        disk.crash(&mut Canonical::default()).unwrap();
        assert_eq!(text(&disk, "config"), "new");
        assert!(!disk.exists("config.tmp"));

        let (mut disk, fd) = setup();
        disk.fsync(fd).unwrap();
        disk.crash(&mut Canonical::default()).unwrap();
        assert_eq!(text(&disk, "config"), "new");
        assert!(!disk.exists("config.tmp"));

        let (mut disk, _) = setup();
        disk.crash(&mut Scripted::new(&[1])).unwrap();
        assert_eq!(
            text(&disk, "config"),
            "new",
            "a lucky crash kept the rename"
        );
    }

    #[test]
    fn renaming_unsynced_data_over_a_file_can_leave_it_empty() {
        let mut disk = Disk::new();
        put_synced(&mut disk, "config", b"old");
        put_unsynced(&mut disk, "config.tmp", b"new");
        disk.rename("config.tmp", "config").unwrap();
        disk.fsync_dir();
        disk.crash(&mut Canonical::default()).unwrap();
        assert_eq!(
            text(&disk, "config"),
            "",
            "the missing fsync before the rename"
        );
    }

    #[test]
    fn delete_is_durable_after_fsync_dir() {
        let setup = || {
            let mut disk = Disk::new();
            put_synced(&mut disk, "lock", b"pid");
            disk.fsync_dir();
            disk.delete("lock").unwrap();
            assert!(!disk.exists("lock"));
            disk
        };
        let mut disk = setup();
        disk.crash(&mut Canonical::default()).unwrap();
        assert_eq!(text(&disk, "lock"), "pid", "the delete was undone");

        let mut disk = setup();
        disk.fsync_dir();
        disk.crash(&mut Canonical::default()).unwrap();
        assert!(!disk.exists("lock"));

        let mut disk = setup();
        disk.sync();
        disk.crash(&mut Canonical::default()).unwrap();
        assert!(!disk.exists("lock"));
    }

    #[test]
    fn a_created_file_is_durable_once_fsynced_and_empty_without_its_data() {
        let mut disk = Disk::new();
        put_synced(&mut disk, "a", b"data");
        disk.crash(&mut Canonical::default()).unwrap();
        assert_eq!(text(&disk, "a"), "data");

        let mut disk = Disk::new();
        let fd = disk.open("b", &mode("wb")).unwrap();
        disk.fsync_dir();
        disk.write(fd, b"data").unwrap();
        disk.crash(&mut Canonical::default()).unwrap();
        assert_eq!(text(&disk, "b"), "");
    }

    #[test]
    fn fsync_commits_the_journal_up_to_the_files_last_entry() {
        let mut disk = Disk::new();
        put_synced(&mut disk, "old", b"o");
        disk.fsync_dir();
        put_unsynced(&mut disk, "before", b"");
        let fd = disk.open("mine", &mode("wb")).unwrap();
        disk.rename("old", "renamed").unwrap();
        disk.fsync(fd).unwrap();
        let mut zeros = Canonical::default();
        disk.crash(&mut zeros).unwrap();
        assert_eq!(disk.list(""), ["before", "mine", "old"]);
        assert_eq!(zeros.record.asked, asked(&[("disk.crash_dir", 2)]));
    }

    #[test]
    fn the_directory_journal_survives_as_a_prefix() {
        let build = || {
            let mut disk = Disk::new();
            put_synced(&mut disk, "x", b"x");
            disk.fsync_dir();
            put_unsynced(&mut disk, "a", b"");
            disk.rename("x", "y").unwrap();
            disk.delete("a").unwrap();
            disk
        };
        let listings: Vec<Vec<String>> = (0..4)
            .map(|survived| {
                let mut disk = build();
                let mut script = Scripted::new(&[survived]);
                let report = disk.crash(&mut script).unwrap();
                assert_eq!(script.record.asked, asked(&[("disk.crash_dir", 4)]));
                assert_eq!(
                    (report.dir_pending, report.dir_survived),
                    (3, survived as usize)
                );
                disk.list("")
            })
            .collect();
        assert_eq!(
            listings,
            [vec!["x"], vec!["a", "x"], vec!["a", "y"], vec!["y"]]
        );
    }

    #[test]
    fn a_deleted_file_stays_readable_through_an_open_handle() {
        let mut disk = Disk::new();
        put_synced(&mut disk, "f", b"still here");
        let fd = disk.open("f", &mode("rb")).unwrap();
        disk.delete("f").unwrap();
        disk.fsync_dir();
        assert!(!disk.exists("f"));
        assert_eq!(disk.read(fd, 5).unwrap(), b"still");
        assert_eq!(disk.read(fd, 100).unwrap(), b" here");
        disk.close(fd).unwrap();
        assert!(disk.inodes.is_empty(), "the last handle freed it");
    }

    #[test]
    fn writes_beyond_capacity_fail_with_no_space_and_change_nothing() {
        let mut disk = Disk::with_capacity(10);
        let fd = disk.open("a", &mode("w+b")).unwrap();
        assert_eq!(disk.write(fd, b"12345678").unwrap(), 8);
        let error = disk.write(fd, b"abc").unwrap_err();
        assert_eq!(
            error,
            DiskError::NoSpace {
                requested: 3,
                available: 2
            }
        );
        assert_eq!(error.errno(), 28);
        assert_eq!(text(&disk, "a"), "12345678", "no short write");
        assert_eq!(disk.seek(fd, SeekFrom::Current(0)).unwrap(), 8);
        disk.seek(fd, SeekFrom::Start(0)).unwrap();
        disk.write(fd, b"ABCDEFGH").unwrap();
        let other = disk.open("b", &mode("wb")).unwrap();
        disk.write(other, b"..").unwrap();
        assert_eq!(disk.used(), 10);
        assert!(
            disk.truncate(other, 3).is_err(),
            "zero-extending takes space too"
        );
        disk.truncate(fd, 4).unwrap();
        assert_eq!(disk.write(other, b"1234").unwrap(), 4);
        disk.close(fd).unwrap();
        disk.delete("a").unwrap();
        assert_eq!(disk.used(), 6, "a delete frees space at once");
    }

    #[test]
    fn a_crash_can_bring_a_disk_back_over_capacity() {
        let mut disk = Disk::with_capacity(10);
        put_synced(&mut disk, "a", b"12345678");
        disk.fsync_dir();
        let fd = disk.open("b", &mode("wb")).unwrap();
        disk.fsync(fd).unwrap();
        disk.delete("a").unwrap();
        disk.write(fd, b"abcdefgh").unwrap();
        disk.fsync(fd).unwrap();
        disk.crash(&mut Canonical::default()).unwrap();
        assert_eq!(disk.list(""), ["a", "b"], "the delete of a was lost");
        assert_eq!(disk.used(), 16);
        let fd = disk.open("b", &mode("ab")).unwrap();
        assert!(matches!(
            disk.write(fd, b"!"),
            Err(DiskError::NoSpace { available: 0, .. })
        ));
    }

    #[test]
    fn writes_past_the_end_zero_fill_and_huge_files_are_refused() {
        let mut disk = Disk::new();
        let fd = disk.open("sparse", &mode("wb")).unwrap();
        disk.seek(fd, SeekFrom::Start(3)).unwrap();
        disk.write(fd, b"x").unwrap();
        assert_eq!(disk.contents("sparse").unwrap(), b"\0\0\0x");
        disk.seek(fd, SeekFrom::Start(MAX_FILE_SIZE)).unwrap();
        let error = disk.write(fd, b"y").unwrap_err();
        assert_eq!(error.errno(), 27);
        assert_eq!(disk.size("sparse").unwrap(), 4);
    }

    #[test]
    fn handles_follow_their_open_mode() {
        let mut disk = Disk::new();
        assert_eq!(
            disk.open("missing", &mode("rb")),
            Err(DiskError::NotFound {
                path: "missing".into()
            })
        );
        put_synced(&mut disk, "f", b"abc");
        assert_eq!(
            disk.open("f", &mode("xb")),
            Err(DiskError::AlreadyExists { path: "f".into() })
        );

        let reader = disk.open("f", &mode("rb")).unwrap();
        assert_eq!(
            disk.write(reader, b"no"),
            Err(DiskError::NotWritable { fd: reader })
        );
        assert_eq!(
            disk.truncate(reader, 0),
            Err(DiskError::NotWritable { fd: reader })
        );
        disk.fsync(reader).unwrap();

        let appender = disk.open("f", &mode("ab")).unwrap();
        assert_eq!(disk.seek(appender, SeekFrom::Current(0)).unwrap(), 3);
        assert_eq!(
            disk.read(appender, 1),
            Err(DiskError::NotReadable { fd: appender })
        );
        disk.seek(appender, SeekFrom::Start(0)).unwrap();
        disk.write(appender, b"de").unwrap();
        assert_eq!(text(&disk, "f"), "abcde", "append ignores the position");

        assert_eq!(disk.seek(reader, SeekFrom::End(-2)).unwrap(), 3);
        assert_eq!(disk.read(reader, 10).unwrap(), b"de");
        assert_eq!(disk.read(reader, 10).unwrap(), b"");
        assert_eq!(disk.seek(reader, SeekFrom::Current(-5)).unwrap(), 0);
        assert_eq!(
            disk.seek(reader, SeekFrom::Current(-1))
                .unwrap_err()
                .errno(),
            22
        );
        disk.seek(reader, SeekFrom::Start(99)).unwrap();
        assert_eq!(
            disk.read(reader, 10).unwrap(),
            b"",
            "past the end reads nothing"
        );

        let writer = disk.open("f", &mode("wb")).unwrap();
        assert_eq!(disk.size("f").unwrap(), 0, "'w' truncates");
        disk.close(writer).unwrap();
        assert_eq!(disk.close(writer), Err(DiskError::IsClosed { fd: writer }));
        assert_eq!(disk.write(writer, b"x").unwrap_err().errno(), 9);

        assert_eq!(disk.open("", &mode("wb")).unwrap_err().errno(), 22);
        assert_eq!(disk.open("a\0b", &mode("wb")).unwrap_err().errno(), 22);
        let neither = OpenOptions::default();
        assert_eq!(disk.open("f", &neither).unwrap_err().errno(), 22);
        let read_create = OpenOptions {
            read: true,
            create: true,
            ..OpenOptions::default()
        };
        assert_eq!(disk.open("g", &read_create).unwrap_err().errno(), 22);
    }

    #[test]
    fn python_open_modes_parse_to_their_options() {
        let o = |read, write, append, create, truncate, create_new| OpenOptions {
            read,
            write,
            append,
            create,
            truncate,
            create_new,
        };
        let table = [
            ("r", o(true, false, false, false, false, false)),
            ("rb", o(true, false, false, false, false, false)),
            ("r+b", o(true, true, false, false, false, false)),
            ("w", o(false, true, false, true, true, false)),
            ("wb+", o(true, true, false, true, true, false)),
            ("a", o(false, true, true, true, false, false)),
            ("a+", o(true, true, true, true, false, false)),
            ("x", o(false, true, false, false, false, true)),
            ("xt", o(false, true, false, false, false, true)),
        ];
        for (text, expected) in table {
            assert_eq!(OpenOptions::parse(text), Ok(expected), "mode {text:?}");
        }
        for bad in ["", "b", "rw", "r++", "rbb", "q", "bt", "r b"] {
            assert!(OpenOptions::parse(bad).is_err(), "mode {bad:?}");
        }
    }

    #[test]
    fn handles_close_at_a_crash_and_their_ids_are_not_reused() {
        let mut disk = Disk::new();
        let fd = disk.open("f", &mode("wb")).unwrap();
        disk.fsync(fd).unwrap();
        assert!(disk.is_open(fd));
        disk.crash(&mut Canonical::default()).unwrap();
        assert!(!disk.is_open(fd));
        assert_eq!(disk.write(fd, b"x"), Err(DiskError::IsClosed { fd }));
        let fresh = disk.open("f", &mode("rb")).unwrap();
        assert_ne!(fresh, fd);
        assert!(disk.is_open(fresh));
        disk.close(fresh).unwrap();
        assert!(!disk.is_open(fresh));
        assert_eq!(disk.read(fd, 1), Err(DiskError::IsClosed { fd }));
    }

    #[test]
    fn a_failing_source_leaves_the_disk_untouched() {
        let mut disk = three_pending_appends();
        put_unsynced(&mut disk, "other", b"zz");
        let fd = disk.open("wal", &mode("rb")).unwrap();
        let before = snapshot(&disk);
        assert_eq!(disk.crash(&mut FailsAt(2)), Err(SOURCE_RAISED));
        assert_eq!(snapshot(&disk), before);
        assert_eq!(disk.read(fd, 4).unwrap(), b"base", "handles stay open");
        let report = disk.crash(&mut FailsAt(usize::MAX)).unwrap();
        assert_eq!(text(&disk, "wal"), "baseAAAABBBBCCCC");
        assert_eq!(text(&disk, "other"), "zz");
        assert!(!report.is_canonical());
    }

    #[test]
    fn an_answer_out_of_range_is_taken_as_zero_and_marked_misaligned() {
        // A journal entry, a file with pending ops and a tear question: every answer
        // is out of range, and the crash is the canonical one.
        let mut disk = three_pending_appends();
        disk.rename("wal", "wal.1").unwrap();
        let mut canonical = disk.clone();
        let expected = canonical.crash(&mut Canonical::default()).unwrap();
        let mut out_of_range = OutOfRange {
            extra: 5,
            ..OutOfRange::default()
        };
        assert_eq!(disk.crash(&mut out_of_range).unwrap(), expected);
        assert_eq!(snapshot(&disk), snapshot(&canonical));
        assert_eq!(
            out_of_range.record.misaligned,
            [
                ("disk.crash_dir".to_string(), 2, 7),
                ("disk.crash".to_string(), 4, 9),
                ("disk.torn_at".to_string(), 4, 9)
            ]
        );
    }

    #[test]
    fn the_crash_report_reads_as_a_story() {
        let mut disk = three_pending_appends();
        disk.rename("wal", "wal.1").unwrap();
        let report = disk.crash(&mut Scripted::new(&[1, 2, 3])).unwrap();
        assert_eq!(
            report.to_string(),
            "crash:\n  directory: 1 of 1 unsynced entries survived\n  \
             wal.1: 2 of 3 unsynced ops survived, op #3 torn after 3 of 4 bytes"
        );
    }

    #[test]
    fn errors_carry_their_errno_and_say_what_happened() {
        let cases = [
            (DiskError::NotFound { path: "p".into() }, 2),
            (DiskError::AlreadyExists { path: "p".into() }, 17),
            (
                DiskError::NoSpace {
                    requested: 1,
                    available: 0,
                },
                28,
            ),
            (DiskError::FileTooLarge { size: 1 }, 27),
            (DiskError::IsClosed { fd: Fd(1) }, 9),
            (DiskError::NotReadable { fd: Fd(1) }, 9),
            (DiskError::NotWritable { fd: Fd(1) }, 9),
            (DiskError::invalid("why"), 22),
        ];
        for (error, errno) in cases {
            assert_eq!(error.errno(), errno, "{error}");
            assert!(
                error.to_string().starts_with(error.strerror()),
                "{error}: the message starts with the errno's text"
            );
        }
        assert_eq!(
            DiskError::NotFound { path: "p".into() }.to_string(),
            "No such file or directory: \"p\""
        );
    }

    /// A random program over a few paths: opens, writes, truncates, fsyncs,
    /// renames, deletes. Errors are part of the program (ignored).
    fn random_program(disk: &mut Disk, seed: u64) {
        let mut program = Lcg(seed);
        let paths = ["a", "b", "dir/c", "dir/d"];
        let modes = ["r+b", "wb", "ab", "xb", "w+b"];
        let mut fds: Vec<Fd> = Vec::new();
        for _ in 0..program.below(40) {
            let path = paths[program.below(4) as usize];
            let fd = fds
                .get(program.below(fds.len() as u64) as usize)
                .copied()
                .unwrap_or(Fd(u64::MAX));
            match program.below(12) {
                0 | 1 => {
                    let options = mode(modes[program.below(5) as usize]);
                    if let Ok(fd) = disk.open(path, &options) {
                        fds.push(fd);
                    }
                }
                2..=4 => {
                    let bytes = program.bytes(8);
                    let _ = disk.write(fd, &bytes);
                }
                5 => {
                    let _ = disk.fsync(fd);
                }
                6 => {
                    let to = paths[program.below(4) as usize];
                    let _ = disk.rename(path, to);
                }
                7 => {
                    let _ = disk.delete(path);
                }
                8 => {
                    let len = program.below(10);
                    let _ = disk.truncate(fd, len);
                }
                9 => {
                    let offset = program.below(12);
                    let _ = disk.seek(fd, SeekFrom::Start(offset));
                }
                10 => disk.fsync_dir(),
                _ => {
                    let _ = disk.close(fd);
                }
            }
        }
    }

    #[test]
    fn same_choices_give_the_same_final_state() {
        let mut distinct_outcomes = 0;
        for seed in 0..300 {
            let run = |choice_seed: u64| {
                let mut disk = Disk::new();
                random_program(&mut disk, seed);
                let report = disk.crash(&mut Lcg(choice_seed)).unwrap();
                random_program(&mut disk, seed + 1);
                (snapshot(&disk), report)
            };
            let first = run(seed);
            assert_eq!(first, run(seed), "seed {seed}");
            if first.0 != run(seed + 1_000).0 {
                distinct_outcomes += 1;
            }
        }
        assert!(
            distinct_outcomes > 30,
            "the choices matter ({distinct_outcomes})"
        );
    }

    #[test]
    fn all_zero_choices_give_the_canonical_outcome_for_any_program() {
        for seed in 0..300 {
            let mut disk = Disk::new();
            random_program(&mut disk, seed);
            let mut synced = disk.clone();
            synced.sync();
            let mut crashed_after_sync = synced.clone();
            crashed_after_sync.crash(&mut Lcg(seed)).unwrap();
            assert_eq!(
                snapshot(&crashed_after_sync),
                snapshot(&synced),
                "seed {seed}"
            );

            let report = disk.crash(&mut Canonical::default()).unwrap();
            assert!(report.is_canonical(), "seed {seed}");
            // A canonical crash is idempotent: nothing is pending any more.
            let after = snapshot(&disk);
            let mut zeros = Canonical::default();
            disk.crash(&mut zeros).unwrap();
            assert!(zeros.record.asked.is_empty());
            assert_eq!(snapshot(&disk), after);
        }
    }

    #[test]
    fn in_a_universe_the_engine_decides_and_its_tape_replays_the_crash() {
        let crash_with = |source: Source| {
            let mut engine: Engine<()> = Engine::new(source, 1_000).unwrap();
            let mut disk = three_pending_appends();
            random_program(&mut disk, 11);
            let report = disk.crash(&mut engine).unwrap();
            engine.finish("completed").unwrap();
            (snapshot(&disk), report, engine)
        };

        let (fifo_state, fifo_report, fifo) = crash_with(Source::seeded(0, &StrategyKind::Fifo));
        assert!(fifo_report.is_canonical());
        assert!(fifo.decisions() > 0);
        assert!(fifo.tape().is_empty());
        let mut canonical = three_pending_appends();
        random_program(&mut canonical, 11);
        canonical.crash(&mut Canonical::default()).unwrap();
        assert_eq!(fifo_state, snapshot(&canonical));

        let mut deviated = 0;
        for seed in 0..60 {
            let (state, report, seeded) = crash_with(Source::seeded(seed, &StrategyKind::Random));
            let tape = seeded.tape().clone();
            deviated += usize::from(!tape.is_empty());
            let (replayed_state, replayed_report, replayed) =
                crash_with(Source::replay(tape, true));
            assert_eq!(replayed_state, state, "seed {seed}");
            assert_eq!(replayed_report, report);
            assert_eq!(replayed.log().digest_hex(), seeded.log().digest_hex());
        }
        assert!(deviated > 30);
    }
}
