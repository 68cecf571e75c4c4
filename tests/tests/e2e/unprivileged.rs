//! The node as an ordinary user, the way an operator runs it as a service
//! user: `scripts/delegate-cgroup.sh` gives `nobody` the cgroups, the
//! `collective` binary runs under `setpriv` as that user, a job on
//! contributed data runs and its output decrypts, the hostile jobs of the
//! root-mode e2e test are contained just the same, and the log audits. Needs root to set this up,
//! as CI has; elsewhere it fails saying so.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use collective_e2e::*;

const T: Duration = Duration::from_secs(90);
const USER: &str = "nobody";

fn chown_tree(root: &std::path::Path, uid: u32) -> Result<()> {
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e?;
        nix::unistd::fchownat(
            None,
            e.path(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(uid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("chown {}", e.path().display()))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unprivileged_node_runs_contains_and_audits() -> Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "this test sets up a service user's cgroups and needs root (CI runs as root)"
    );
    let uid = nix::unistd::User::from_name(USER)?
        .context("no user nobody")?
        .uid
        .as_raw();
    let tmp = tempfile::tempdir()?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let key_file = dirs.root.join("keys").join(collective_vault::NODE_KEY_FILE);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let mut files: Vec<(String, Option<String>)> =
        hostile_jobs(listener.local_addr()?.port(), &key_file)
            .into_iter()
            .map(|(n, y)| (format!("jobs/{n}/job.yaml"), Some(y)))
            .collect();
    files.push(("README.md".into(), Some("stats job\n".into())));
    files.push(("jobs/stats/job.yaml".into(), Some(STATS_JOB_YAML.into())));
    files.push(("jobs/stats/run.py".into(), Some(STATS_JOB_PY.into())));
    let refs: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_deref()))
        .collect();
    let (ids, _) = repo.commit(&refs, "stats and hostile jobs")?;
    devnet.seed_node(&dirs, b"a,b\n1,2\n").await?;

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/delegate-cgroup.sh");
    let name = format!("collective-e2e-{}", std::process::id());
    let out = std::process::Command::new(&script)
        .args([USER, &name])
        .output()?;
    ensure!(
        out.status.success(),
        "delegate-cgroup.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cgroups: Vec<std::path::PathBuf> = String::from_utf8(out.stdout)?
        .lines()
        .map(Into::into)
        .collect();

    let mut cfg = node_config(&devnet, &repo.path, &dirs, 0);
    let port = collective_chain::devnet::free_port()?;
    cfg.http.listen = format!("127.0.0.1:{port}");
    cfg.sandbox.cgroups = cgroups.clone();
    let cfg_path = tmp.path().join("node.yaml");
    std::fs::write(&cfg_path, serde_norway::to_string(&cfg)?)?;
    chown_tree(&dirs.root, uid)?;
    if let Some(d) = &cfg.chain.deployment {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o644))?;
    }
    let log = std::fs::File::create(tmp.path().join("node.err"))?;
    chown_tree(&repo.path, uid)?;
    let mut child = std::process::Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "--",
        ])
        .arg(collective_bin())
        .args(["node", "run", "--config"])
        .arg(&cfg_path)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &dirs.root)
        .env("TMPDIR", &dirs.root)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
    let err_path = tmp.path().join("node.err");
    let url = format!("http://127.0.0.1:{port}");
    let result = async {
        let up = eventually(T, "the unprivileged node's API", || async {
            get_json(&format!("{url}/v1/status")).await.ok()
        })
        .await;
        if up.is_err() {
            anyhow::bail!(
                "the node did not serve: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        let requester = Requester::default();
        devnet.approve(&ids, &[requester.recipient()], 0).await?;
        let finished = eventually(T, "every job to finish", || async {
            let runs = get_json(&format!("{url}/v1/runs")).await.ok()?;
            let fin: Vec<serde_json::Value> = runs["runs"]
                .as_array()?
                .iter()
                .filter(|r| r["decision"] == "job-finished")
                .cloned()
                .collect();
            (fin.len() == 10).then_some(fin)
        })
        .await?;
        let get = |n: &str| finished.iter().find(|r| r["job"] == n).cloned().unwrap();
        ensure!(get("stats")["exit_status"] == 0, "{}", get("stats"));
        assert_hostile_contained(&get);
        ensure!(
            listener.accept().is_err(),
            "the host listener saw a connection"
        );
        let ct = std::fs::read(
            dirs.outbox()
                .join(&ids.sha256)
                .join("stats/out/result.json.age"),
        )?;
        let v: serde_json::Value = serde_json::from_slice(&requester.decrypt(&ct)?)?;
        ensure!(v["lines"] == 2, "{v}");
        let audit = audit_http(&url, &[])?;
        ensure!(
            audit.status.success(),
            "audit: {}",
            String::from_utf8_lossy(&audit.stderr)
        );
        // The run directories the node made are private to its user.
        for e in std::fs::read_dir(dirs.root.join("work"))?.flatten() {
            let m = e.metadata()?;
            use std::os::unix::fs::MetadataExt;
            ensure!(
                m.uid() == uid,
                "{} is not the service user's",
                e.path().display()
            );
        }
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    for d in cgroups.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    result
}
