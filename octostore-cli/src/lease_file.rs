//! Lease files: `lock acquire --lease-file F` keeps the lease in F, which `lock renew` and
//! `lock release --lease-file F` read, so that a script needs no parsing of output. The lease
//! id releases the lock, so the file is a secret file (`secret_file`): owner-only, written whole.

use std::io;
use std::path::Path;

use octostore_core::{Error, Result};
use octostore_http::dto::LockResponse;

/// Writes `lease` to `path` as the API's JSON of it.
pub fn write(path: &Path, lease: &LockResponse) -> Result<()> {
    let json = serde_json::to_string(lease).expect("API objects serialize");
    crate::secret_file::write(path, &format!("{json}\n")).map_err(|e| {
        Error::invalid(
            "lease_file",
            format!("cannot write the lease to {}: {e}", path.display()),
        )
    })
}

/// The lease `path` holds.
pub fn read(path: &Path) -> Result<LockResponse> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid("lease_file", format!("cannot read {}: {e}", path.display()))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::invalid(
            "lease_file",
            format!("{} holds no lease ({e})", path.display()),
        )
    })
}

/// Removes the file; one already gone is no error.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        result => result,
    }
}
