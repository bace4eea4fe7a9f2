//! The PID file, with Gunicorn's rules: refuse to start over a live pid, write atomically
//! (temp file + rename, mode 0644), and remove it only while it still holds our pid.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::errors::{Error, Result};

pub struct Pidfile {
    pub path: PathBuf,
    pid: i32,
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn is_alive(pid: i32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

impl Pidfile {
    pub fn create(path: &Path, pid: i32) -> Result<Pidfile> {
        if let Some(old) = read_pid(path) {
            if old != pid && old > 0 && is_alive(old) {
                return Err(Error::Config(format!(
                    "Already running on PID {old} (or pid file '{}' is stale)",
                    path.display()
                )));
            }
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("pid"),
            pid
        ));
        {
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{pid}")?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, path)?;
        Ok(Pidfile {
            path: path.to_path_buf(),
            pid,
        })
    }

    pub fn unlink(&self) {
        if read_pid(&self.path) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
