//! Witness cosigning end to end: a node with three witnesses (one honest,
//! one that refuses because it does not know the log, one down) runs a job;
//! the honest witness follows every checkpoint through consistency proofs,
//! the node serves its cosignature, shows the other two as failing, and
//! `collective audit --witness ... --witness-quorum K` passes or refuses.

use std::time::Duration;

use anyhow::Result;
use collective_e2e::*;

const T: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn witnesses_cosign_and_the_audit_requires_a_quorum() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (ids, _) = repo.commit(
        &[
            ("README.md", Some("stats job\n")),
            ("jobs/stats/job.yaml", Some(STATS_JOB_YAML)),
            ("jobs/stats/run.py", Some(STATS_JOB_PY)),
        ],
        "stats",
    )?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    devnet.seed_node(&dirs, b"a,b\n1,2\n").await?;
    let origin = "collective.test/node";
    let log_vkey = node_keys().log_verifier_key(origin)?;
    let honest = TestWitness::start("witness.test/honest", 31).await?;
    honest.add_log(origin, &log_vkey);
    let stranger = TestWitness::start("witness.test/stranger", 32).await?;
    let down = format!(
        "http://127.0.0.1:{}",
        collective_chain::devnet::free_port()?
    );
    let mut cfg = node_config(&devnet, &repo.path, &dirs, 0);
    cfg.log.witnesses = vec![
        collective_controller::config::WitnessConfig {
            url: honest.url.clone(),
            vkey: honest.vkey.clone(),
        },
        collective_controller::config::WitnessConfig {
            url: stranger.url.clone(),
            vkey: stranger.vkey.clone(),
        },
        collective_controller::config::WitnessConfig {
            url: down,
            vkey: collective_attest::witness::witness_verifier_key(
                "witness.test/down",
                &ed25519_dalek::SigningKey::from_bytes(&[33; 32]).verifying_key(),
            ),
        },
    ];
    // `collective node check` passes on this registered, working setup.
    let cfg_path = tmp.path().join("node.yaml");
    std::fs::write(&cfg_path, serde_norway::to_string(&cfg)?)?;
    let check = std::process::Command::new(collective_bin())
        .args(["node", "check", "--config"])
        .arg(&cfg_path)
        .output()?;
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        text.contains("keys match") && text.contains("probe job contained"),
        "{text}"
    );
    let node = RunningNode::start(cfg.clone()).await?;
    devnet
        .approve(&ids, &[Requester::default().recipient()], 0)
        .await?;
    node.wait_decision("job-finished", Some("stats"), T).await?;
    let size = node.get("/v1/status").await?["log_size"].as_u64().unwrap();
    let status = eventually(
        T,
        "the honest witness to cosign the latest checkpoint",
        || async {
            let s = node.get("/v1/status").await.ok()?;
            let w = s["witnesses"].as_array()?.clone();
            let latest = s["log_size"].as_u64()?;
            (w[0]["cosigned_size"].as_u64() == Some(latest)
                && w[1]["error"].is_string()
                && w[2]["error"].is_string())
            .then_some(s)
        },
    )
    .await?;
    let w = &status["witnesses"];
    assert!(w[1]["error"].as_str().unwrap().contains("404"), "{w}");
    assert!(
        w[2]["error"].as_str().unwrap().contains("unreachable"),
        "{w}"
    );
    assert!(w[0]["error"].is_null(), "{w}");
    // It followed the log across checkpoints (consistency proofs), not
    // just once from zero.
    assert!(size >= 3);
    assert!(honest.cosigned.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_eq!(
        honest.witness.lock().unwrap().size(origin),
        status["log_size"].as_u64()
    );
    let cp = String::from_utf8(node.bytes("/log/checkpoint").await?)?;
    assert!(cp.contains("witness.test/honest"), "{cp}");

    let audit = |extra: &[&str]| {
        std::process::Command::new(collective_bin())
            .args([
                "audit",
                "--log",
                &format!("{}/log/", node.url),
                "--log-key",
                &log_vkey,
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = audit(&["--witness", &honest.vkey]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let out = audit(&[
        "--witness",
        &honest.vkey,
        "--witness",
        &stranger.vkey,
        "--witness-quorum",
        "2",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("[witness-quorum]"));
    let one_of_two = audit(&[
        "--witness",
        &honest.vkey,
        "--witness",
        &stranger.vkey,
        "--witness-quorum",
        "1",
    ]);
    assert!(one_of_two.status.success());

    // Cache-Control as tlog-tiles serves it: the checkpoint never cached,
    // tiles immutable.
    let c = reqwest::get(format!("{}/log/checkpoint", node.url)).await?;
    assert_eq!(c.headers()["cache-control"], "no-cache");
    let t = reqwest::get(format!("{}/log/tile/0/000.p/{size}", node.url)).await?;
    assert!(t.status().is_success());
    assert!(t.headers()["cache-control"].to_str()?.contains("immutable"));
    node.stop().await;

    // A restarted node does not know the witness's size: it sends `old 0`,
    // gets 409 with the size, and resubmits from there.
    let before = honest.cosigned.load(std::sync::atomic::Ordering::Relaxed);
    let node = RunningNode::start(cfg).await?;
    eventually(T, "the witness to cosign again after a 409", || async {
        let s = node.get("/v1/status").await.ok()?;
        let cosigned = honest.cosigned.load(std::sync::atomic::Ordering::Relaxed) > before;
        (cosigned && s["witnesses"][0]["cosigned_size"].as_u64() == s["log_size"].as_u64())
            .then_some(())
    })
    .await?;
    assert!(honest.conflicts.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let ok = audit_http(&node.url, &["--witness", &honest.vkey])?;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    node.stop().await;
    Ok(())
}
