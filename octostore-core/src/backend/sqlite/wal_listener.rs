//! Hearing other processes' commits to the file. SQLite appends each commit to the file's
//! write-ahead log (`-wal`), and on Linux the kernel reports every write to it (inotify), so
//! a waiting thread sleeps until one comes. A commit's frames are written before the log's
//! index (in `-shm`, mapped memory, which reports nothing) says it committed: a listener
//! waits [`SETTLE`] after the first write it hears, and after a write it looks again at most
//! [`FOLLOW_UP`] later, so a commit that showed only after the first read is read then. Our
//! own writes are heard too (a read for nothing). Where the kernel refuses (no inotify
//! watches left), the listener wakes every [`POLL`] instead. (Other systems have no listener:
//! their readers poll.)

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::Listener;

/// How long a listener lets a burst of writes (a commit's frames, a group's) go on before
/// it wakes its reader.
pub const SETTLE: Duration = Duration::from_millis(1);
/// How soon after waking on writes a listener wakes again, heard or not.
pub const FOLLOW_UP: Duration = Duration::from_millis(20);
/// How often a listener wakes where writes cannot be heard.
pub const POLL: Duration = Duration::from_millis(20);

/// Hears the writes to one database file's write-ahead log.
pub(super) struct WalListener {
    /// The log's path.
    wal: PathBuf,
    /// The kernel's reports of the log's writes, once set up; `None` before the first wait,
    /// or where they cannot be had.
    writes: Option<inotify::Inotify>,
    /// Whether setting them up was tried.
    tried: bool,
    /// Whether the last wait heard writes: the next wakes within [`FOLLOW_UP`].
    heard: bool,
}

impl WalListener {
    /// A listener for the database at `db`, set up when first waited on.
    pub(super) fn new(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal: wal.into(),
            writes: None,
            tried: false,
            heard: false,
        }
    }
}

impl Listener for WalListener {
    fn wait(&mut self, timeout: Duration) -> bool {
        if !self.tried {
            self.tried = true;
            self.writes = inotify::Inotify::init().ok().filter(|writes| {
                let watch = writes.watches().add(&self.wal, inotify::WatchMask::MODIFY);
                watch.is_ok()
            });
        }
        let Some(writes) = &mut self.writes else {
            std::thread::sleep(POLL.min(timeout));
            return false;
        };
        let timeout = match self.heard {
            true => FOLLOW_UP.min(timeout),
            false => timeout,
        };
        let mut ready = libc::pollfd {
            fd: writes.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one `pollfd`, valid for the call, on a descriptor `writes` keeps open.
        let heard = unsafe { libc::poll(&mut ready, 1, millis) } > 0;
        if heard {
            std::thread::sleep(SETTLE);
            let mut buffer = [0u8; 4096];
            while writes.read_events(&mut buffer).is_ok() {}
        }
        self.heard = heard;
        heard
    }
}
