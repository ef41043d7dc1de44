//! The embedded store's file when neither `--db` nor `OCTOSTORE_DB` names one: one file per
//! user, the same from every working directory, so that `serve`, `token` and every command
//! run anywhere by one user share their locks and tokens (a relative default would give each
//! directory a store, and two "exclusive" locks of one name).

use std::ffi::OsStr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use octostore_core::{Error, Result};

/// The store's directory for root: the system's state, as a service's.
const ROOT_DIR: &str = "/var/lib/octostore";
/// The file's name in its directory.
const FILE: &str = "octostore.db";

/// The rule, as `--help` states it.
pub const RULE: &str = "$XDG_STATE_HOME/octostore/octostore.db, else /var/lib/octostore/\
                        octostore.db for root, else $HOME/.local/state/octostore/octostore.db";

/// The default store file of the user `uid` with these `HOME` and `XDG_STATE_HOME`:
/// `$XDG_STATE_HOME/octostore/octostore.db`; else, for root (uid 0),
/// `/var/lib/octostore/octostore.db`; else `$HOME/.local/state/octostore/octostore.db`. A
/// variable that is empty or not an absolute path counts as unset (as the XDG specification
/// says). `None` when no rule applies: a user with neither variable, not root.
///
/// `XDG_STATE_HOME` before root's rule: set, it is the user's explicit choice. Root's `HOME`
/// is not used: `sudo` may keep the invoking user's, and a service has none worth trusting.
pub fn default_db(
    uid: u32,
    home: Option<&OsStr>,
    xdg_state_home: Option<&OsStr>,
) -> Option<PathBuf> {
    let absolute = |value: Option<&OsStr>| {
        value
            .map(Path::new)
            .filter(|path| path.is_absolute())
            .map(Path::to_path_buf)
    };
    let dir = if let Some(state) = absolute(xdg_state_home) {
        state.join("octostore")
    } else if uid == 0 {
        PathBuf::from(ROOT_DIR)
    } else {
        absolute(home)?.join(".local/state/octostore")
    };
    Some(dir.join(FILE))
}

/// [`default_db`] for this process's user and environment.
pub fn this_users_default() -> Option<PathBuf> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    default_db(
        uid,
        std::env::var_os("HOME").as_deref(),
        std::env::var_os("XDG_STATE_HOME").as_deref(),
    )
}

/// `--db`'s help: the rule and, where it gives one, this user's file.
pub fn db_help() -> String {
    let default = match this_users_default() {
        Some(path) => path.display().to_string(),
        None => "none: set HOME or XDG_STATE_HOME, or pass --db".to_owned(),
    };
    format!(
        "The SQLite file of the embedded store; by default one per user, the same from every \
         directory: {RULE} [default: {default}]"
    )
}

/// This user's default file, its directory created (0700, with any missing parents) if
/// missing; the file itself the store creates, 0600.
pub fn open_default() -> Result<PathBuf> {
    let path = this_users_default().ok_or_else(|| {
        Error::invalid(
            "db",
            "no default store file: neither HOME nor XDG_STATE_HOME is set; pass --db FILE \
             (or set OCTOSTORE_DB)",
        )
    })?;
    let dir = path.parent().expect("a file in a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Error::invalid(
                "db",
                format!(
                    "cannot create {} for the default store: {e}; pass --db FILE",
                    dir.display()
                ),
            )
        })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(uid: u32, home: Option<&str>, xdg: Option<&str>) -> Option<PathBuf> {
        default_db(uid, home.map(OsStr::new), xdg.map(OsStr::new))
    }

    #[test]
    fn xdg_state_home_then_root_then_home() {
        let xdg = Some("/x/state");
        let home = Some("/home/ann");
        let in_xdg = Some(PathBuf::from("/x/state/octostore/octostore.db"));
        assert_eq!(db(1000, home, xdg), in_xdg);
        assert_eq!(db(0, home, xdg), in_xdg);
        assert_eq!(
            db(1000, home, None),
            Some(PathBuf::from(
                "/home/ann/.local/state/octostore/octostore.db"
            ))
        );
        let for_root = Some(PathBuf::from("/var/lib/octostore/octostore.db"));
        assert_eq!(db(0, Some("/root"), None), for_root);
        assert_eq!(db(0, None, None), for_root);
    }

    #[test]
    fn empty_or_relative_variables_count_as_unset() {
        let home = Some(PathBuf::from(
            "/home/ann/.local/state/octostore/octostore.db",
        ));
        assert_eq!(db(1000, Some("/home/ann"), Some("")), home);
        assert_eq!(db(1000, Some("/home/ann"), Some("state")), home);
        assert_eq!(db(1000, Some(""), None), None);
        assert_eq!(db(1000, Some("ann"), Some("rel")), None);
    }

    #[test]
    fn a_user_with_neither_variable_has_no_default() {
        assert_eq!(db(1000, None, None), None);
    }
}
