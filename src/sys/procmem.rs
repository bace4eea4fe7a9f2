//! A process's proportional set size (PSS) from `/proc/<pid>/smaps_rollup`, for the
//! master's memory-based recycling (`max_worker_memory`).
//!
//! Owns: reading and parsing that file. Must not touch: what a reading means (when a
//! worker is too big, what to do about it: `arbiter::memory`).

use std::io;

/// The PSS of process `pid` in bytes. The kernel walks the process's page tables to answer
/// (6 to 12 ms per resident GiB, measured on a 2-core box), so callers ration the reads.
/// A process that is gone, or has exited and is not reaped yet (the kernel answers ESRCH
/// for a zombie), is `ErrorKind::NotFound`.
pub fn pss_bytes(pid: i32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).map_err(|e| {
        if e.raw_os_error() == Some(nix::errno::Errno::ESRCH as i32) {
            io::Error::new(io::ErrorKind::NotFound, e)
        } else {
            e
        }
    })?;
    parse_pss_kib(&text)
        .map(|kib| kib.saturating_mul(1024))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no Pss line in /proc/{pid}/smaps_rollup"),
            )
        })
}

/// Whether this kernel offers `smaps_rollup` (Linux 4.14 and later) and lets us read it.
pub fn available() -> io::Result<()> {
    pss_bytes(std::process::id() as i32).map(|_| ())
}

/// The `Pss:` line's value, in KiB (the kernel always writes `kB`).
fn parse_pss_kib(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("Pss:")?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_pss_line_not_its_neighbours() {
        let text = "55b2a50f6000-7fff2c7e6000 ---p 00000000 00:00 0    [rollup]\n\
                    Rss:             1066136 kB\n\
                    Pss:             1060856 kB\n\
                    Pss_Dirty:       1059560 kB\n";
        assert_eq!(parse_pss_kib(text), Some(1_060_856));
        assert_eq!(parse_pss_kib("Rss: 12 kB\nPss_Anon: 3 kB\n"), None);
        assert_eq!(parse_pss_kib("Pss: lots kB\n"), None);
    }

    #[test]
    fn reads_our_own_pss() {
        available().expect("smaps_rollup");
        let pss = pss_bytes(std::process::id() as i32).expect("own pss");
        assert!(pss > 0 && pss.is_multiple_of(1024), "{pss}");
        let gone = pss_bytes(i32::MAX).expect_err("no such process");
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_zombie_is_gone() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Not reaped until the end: poll its state until it has exited.
        while !std::fs::read_to_string(&stat).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        }) {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let gone = pss_bytes(pid).expect_err("a zombie has no memory");
        child.wait().expect("reap");
        assert_eq!(gone.kind(), io::ErrorKind::NotFound, "{gone}");
    }
}
