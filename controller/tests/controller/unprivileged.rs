//! The whole sandbox suite again, as an ordinary user: a node that runs as
//! a service user is a first-class mode. As root, this delegates a pair of
//! cgroup v1 directories (or a v2 one) to uid 65534, the way
//! `scripts/delegate-cgroup.sh` does for an operator, and re-runs this
//! test binary's `sandbox_` tests under `setpriv` as that uid.

use std::path::PathBuf;

use crate::support::UNPRIV_ENV;

const USER: u32 = 65534;

/// Creates job-cgroup parents owned by `USER`, next to the node's own.
fn delegate() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut dirs = Vec::new();
    let name = format!("collective-test-{}", std::process::id());
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        for c in ["memory", "pids"] {
            if ctrls.split(',').any(|x| x == c) {
                dirs.push(PathBuf::from(format!("/sys/fs/cgroup/{c}{path}")).join(&name));
            }
        }
    }
    assert_eq!(
        dirs.len(),
        2,
        "this test needs cgroup v1 memory and pids hierarchies"
    );
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
        for entry in std::iter::once(d.clone())
            .chain(std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        {
            nix::unistd::chown(
                &entry,
                Some(nix::unistd::Uid::from_raw(USER)),
                Some(nix::unistd::Gid::from_raw(USER)),
            )
            .unwrap();
        }
    }
    dirs
}

#[test]
fn unprivileged_node_passes_the_sandbox_suite() {
    if std::env::var_os(UNPRIV_ENV).is_some() || !nix::unistd::geteuid().is_root() {
        return; // the inner run, or not root: nothing to delegate from
    }
    let dirs = delegate();
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let joined = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={USER}"),
            &format!("--regid={USER}"),
            "--clear-groups",
            "--",
        ])
        .arg(&exe)
        .args(["sandbox_", "--test-threads=2"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", tmp.path())
        .env("TMPDIR", tmp.path())
        .env(UNPRIV_ENV, &joined)
        .output()
        .unwrap();
    for d in dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "unprivileged suite failed:\n{text}\n{err}"
    );
    let passed: usize = text
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(
        passed >= 15,
        "too few sandbox tests ran unprivileged ({passed}):\n{text}"
    );
}
