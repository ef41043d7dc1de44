//! Checkpoints beside the writer, not inside its commits.
//!
//! SQLite's own checkpoint runs inside the commit that takes the write-ahead log past 1 000
//! pages: that commit's caller, and through group commit every client queued behind it,
//! waits while the pages are copied into the file and it is synced (11 ms for 1 000 pages
//! here). Instead, such a commit nudges a thread of the backend's, which checkpoints on a
//! connection of its own in `PASSIVE` mode, never blocking the writer.
//!
//! SQLite rewinds the log only when a write begins with every page of it copied, which a
//! checkpoint running beside a steady stream of commits never quite reaches. So past
//! [a mark](Marks) the writer checkpoints itself, as SQLite would, copying only the few
//! pages the thread has not, and the log is rewound.

use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::mpsc::{self, SyncSender};

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

/// When a commit hands the log to a checkpoint, in pages of log after the commit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Marks {
    /// Nudge the checkpointing thread.
    nudge: c_int,
    /// Checkpoint in the writer.
    catch_up: c_int,
}

impl Marks {
    /// SQLite's own mark for the nudge; the writer catches up past 32 MiB (4 KiB pages).
    pub(super) const DEFAULT: Marks = Marks {
        nudge: 1_000,
        catch_up: 8_000,
    };
}

/// Replaces `conn`'s automatic checkpoints with checkpoints beside it, at `marks`. The
/// thread starts at the first nudge and ends after the connection is closed; a file-less
/// database has no log and is left as it is.
pub(super) fn move_off_commits(conn: &mut Connection, marks: Marks) -> rusqlite::Result<()> {
    let Some(path) = conn.path().filter(|p| !p.is_empty()).map(PathBuf::from) else {
        return Ok(());
    };
    let mut thread: Option<SyncSender<()>> = None;
    conn.wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
        if pages >= marks.catch_up {
            // Another checkpoint running answers "busy" at once: the next commit tries again.
            let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
        } else if pages >= marks.nudge {
            let nudges = thread.get_or_insert_with(|| start(path.clone()));
            // Full: a nudge is already waiting, which covers this one.
            let _ = nudges.try_send(());
        }
        // The commit has happened whatever a checkpoint did: never fail it.
        Ok(())
    }))
}

/// Starts the thread that checkpoints the file at `path` once per nudge it receives; it ends
/// when the nudges' sender is dropped. If it cannot start, nudges go nowhere and the writer
/// still catches up itself.
fn start(path: PathBuf) -> SyncSender<()> {
    let (nudge, nudges) = mpsc::sync_channel::<()>(1);
    let _detached = std::thread::Builder::new()
        .name("octostore-checkpoint".into())
        .spawn(move || {
            // The connection learns that the file is in WAL mode (or checkpoints nothing) when
            // it first reads it.
            let opened = Connection::open(&path).and_then(|conn| {
                conn.pragma_query_value(None, "journal_mode", |row| row.get::<_, String>(0))?;
                Ok(conn)
            });
            let Ok(conn) = opened else {
                return;
            };
            for () in nudges {
                // A failed checkpoint leaves the log longer; the next nudge tries again.
                let _ = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
            }
        });
    nudge
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;

    /// A mark never reached.
    const NEVER: c_int = c_int::MAX;

    /// A new file `db` in `dir`, in WAL mode, with one table, its log moved off commits at
    /// these marks.
    fn open(dir: &Path, nudge: c_int, catch_up: c_int) -> Connection {
        let mut conn = Connection::open(dir.join("db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (v BLOB)").unwrap();
        move_off_commits(&mut conn, Marks { nudge, catch_up }).unwrap();
        conn
    }

    /// Commits rows of 16 KiB, four pages of log each.
    fn commit_rows(conn: &Connection, rows: usize) {
        for _ in 0..rows {
            conn.execute("INSERT INTO t VALUES (zeroblob(16384))", [])
                .unwrap();
        }
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    #[test]
    fn the_thread_checkpoints_what_the_writer_committed() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path(), 40, NEVER);
        let file = dir.path().join("db");
        let before = size(&file);
        // Under the nudge (4 rows: 16 to 24 pages of log), the rows stay in the log: the file
        // does not grow.
        commit_rows(&conn, 4);
        assert_eq!(size(&file), before);
        // Past it (16 rows: 64 pages at least), the thread copies them into the file; the
        // writer never does here.
        commit_rows(&conn, 12);
        let deadline = Instant::now() + Duration::from_secs(30);
        while size(&file) < before + 16 * 16384 {
            assert!(Instant::now() < deadline, "no checkpoint in 30 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_writer_catches_up_so_the_log_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        // No thread: the writer alone checkpoints, so the bound is exact.
        let conn = open(dir.path(), NEVER, 40);
        let wal = dir.path().join("db-wal");
        let mut longest = 0;
        for _ in 0..200 {
            commit_rows(&conn, 1);
            // A frame is a page of 4 KiB and a header of 24 bytes; the log's header is 32.
            longest = longest.max(size(&wal).saturating_sub(32) / (4096 + 24));
        }
        // At most one commit (a row's 4 pages, and the pages that point to them) past the mark.
        assert!((40..=40 + 8).contains(&longest), "{longest} frames of log");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 200);
    }
}
