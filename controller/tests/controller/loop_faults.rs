//! The control loop's middle tier: the real journal, tree store, gate and
//! git repository, with a chain and a job runner that the test controls.
//! Each test drives the loop through one fault and checks what it wrote
//! to the log, what it shows in status, and what it did to jobs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use collective_controller::ControllerError;

use super::fakes::fixture;

/// Passes over many blocks with nothing new write nothing.
#[tokio::test]
async fn approved_tree_deploys_runs_once_and_then_writes_nothing() {
    let f = fixture().job("count", "all").build();
    f.contribute(1);
    f.approve(0);
    f.pass().await.unwrap();
    f.jobs_idle().await;
    assert_eq!(
        f.decisions_since(0),
        ["deployed", "job-started", "job-finished"],
        "{:#?}",
        f.entries()
    );
    assert_eq!(f.runner.runs.load(Ordering::Relaxed), 1);
    assert_eq!(f.runner.datasets_seen.lock()[0].len(), 1);
    let size = f.log_size();
    for _ in 0..30 {
        f.chain.mine(|_| {});
        f.pass().await.unwrap();
    }
    assert_eq!(f.log_size(), size, "{:#?}", f.entries());
    assert_eq!(f.runner.runs.load(Ordering::Relaxed), 1, "a job runs once");
}

/// The flood the issue measured: an expired approval, then every block.
#[tokio::test]
async fn expired_approval_writes_one_entry_whatever_the_clock_says() {
    let f = fixture().job("count", "all").build();
    let b = f.chain.head_ref();
    f.approve(b.timestamp + 100);
    f.pass().await.unwrap();
    f.jobs_idle().await;
    let before = f.log_size();
    // Past the expiry, 40 blocks with a new `now` each.
    for _ in 0..40 {
        f.chain.mine(|_| {});
        f.pass().await.unwrap();
    }
    let new = f.decisions_since(before);
    assert_eq!(new, ["suspended"], "{:#?}", f.entries());
    let e = f.entries().pop().unwrap();
    assert!(e.reason.contains("expired"), "{}", e.reason);
    let status = f.board.get();
    assert!(status.deployed.is_none());
}

/// A deploy that fails (ENOTDIR, as a full disk would) is logged once, with
/// its cause, backs off, shows in status, and deploys once the disk is fixed.
#[tokio::test(start_paused = true)]
async fn failing_deploy_is_logged_once_with_its_cause_and_backs_off() {
    let f = fixture().job("count", "all").broken_tree_store().build();
    f.approve(0);
    f.pass().await.unwrap();
    let after_first = f.log_size();
    assert_eq!(f.decisions_since(0), ["refused"], "{:#?}", f.entries());
    let e = f.entries().pop().unwrap();
    assert!(e.reason.contains("deployment failed"), "{}", e.reason);
    assert!(
        e.reason.contains("Not a directory"),
        "the OS error is named: {}",
        e.reason
    );
    assert!(f.board.has("deploy"));
    // While held back, passes do not try again; after the backoff they do,
    // and the same cause writes nothing new.
    for i in 0..20 {
        f.chain.mine(|_| {});
        f.pass().await.unwrap();
        if i % 5 == 0 {
            tokio::time::advance(Duration::from_secs(3)).await;
        }
    }
    assert_eq!(f.log_size(), after_first, "{:#?}", f.entries());
    assert!(f.board.get().problems["deploy"]
        .message
        .contains("Not a directory"));
    f.repair_tree_store();
    tokio::time::advance(collective_controller::control::MAX_BACKOFF).await;
    f.chain.mine(|_| {});
    f.pass().await.unwrap();
    f.jobs_idle().await;
    assert_eq!(
        f.decisions_since(after_first),
        ["deployed", "job-started", "job-finished"],
        "{:#?}",
        f.entries()
    );
    assert!(
        !f.board.has("deploy"),
        "the problem clears when the deploy works"
    );
}

/// A job that panics is a failed end, not a job "running" forever.
#[tokio::test]
async fn a_panicking_job_is_logged_as_failed_and_leaves_the_running_set() {
    let f = fixture().job("panics", "all").build();
    f.approve(0);
    f.pass().await.unwrap();
    f.jobs_idle().await;
    let last = f.entries().pop().unwrap();
    assert_eq!(last.decision, "job-finished");
    assert!(
        last.reason.contains("panicked") && last.reason.contains("hostile job code"),
        "{}",
        last.reason
    );
    assert_eq!(last.exit_status, Some(-1));
    assert!(f.board.get().running.is_empty() || f.control.jobs.observed().is_empty());
    // It is done: later passes do not rerun it.
    let size = f.log_size();
    f.chain.mine(|_| {});
    f.pass().await.unwrap();
    assert_eq!(f.log_size(), size);
    assert_eq!(f.runner.runs.load(Ordering::Relaxed), 1);
}

/// Revocation acts at the head block: with depth 3, one block after the
/// revocation the job is already stopped.
#[tokio::test]
async fn revocation_stops_the_job_at_the_head_block_not_at_depth() {
    let f = fixture().confirmations(3).job("hangs", "all").build();
    f.approve(0);
    for _ in 0..3 {
        f.chain.mine(|_| {});
    }
    f.pass().await.unwrap();
    f.job_running().await;
    f.revoke("leaked a key");
    f.pass().await.unwrap();
    f.jobs_idle().await;
    let d = f.decisions_since(0);
    assert!(
        d.ends_with(&["revoked".to_string()]) || d.contains(&"revoked".to_string()),
        "{d:?}"
    );
    let job_end = f
        .entries()
        .into_iter()
        .find(|e| e.job.as_deref() == Some("hangs") && e.decision == "revoked")
        .expect("the job's end names the revocation");
    assert!(
        job_end.reason.contains("leaked a key"),
        "{}",
        job_end.reason
    );
}

/// A pause at the head block stops the job and is logged as `paused`.
#[tokio::test]
async fn pause_stops_the_job_and_is_logged_as_paused() {
    let f = fixture().confirmations(2).job("hangs", "all").build();
    f.approve(0);
    f.chain.mine(|_| {});
    f.chain.mine(|_| {});
    f.pass().await.unwrap();
    f.job_running().await;
    f.chain.mine(|s| s.paused = true);
    f.pass().await.unwrap();
    f.jobs_idle().await;
    // The job's end, then (next pass) the tree's undeploy: both `paused`.
    f.pass().await.unwrap();
    assert_eq!(
        f.decisions_since(0),
        ["deployed", "job-started", "paused", "paused"],
        "{:#?}",
        f.entries()
    );
    let before = f.log_size();
    for _ in 0..10 {
        f.chain.mine(|_| {});
        f.pass().await.unwrap();
    }
    assert_eq!(f.log_size(), before, "{:#?}", f.entries());
}

/// A chain shorter than the depth is named as such and changes nothing.
#[tokio::test]
async fn chain_shorter_than_the_depth_is_named_and_allows_nothing() {
    let f = fixture().confirmations(5).job("count", "all").build();
    f.approve(0);
    let e = f.pass().await.unwrap_err();
    assert!(
        matches!(
            e,
            ControllerError::ChainTooShort {
                height: 1,
                confirmations: 5
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("confirmation"), "{e}");
    assert_eq!(f.log_size(), 0);
}

/// A job naming a dataset never registered is refused with that reason,
/// once, and never run.
#[tokio::test]
async fn a_dataset_never_registered_is_a_refusal_not_an_empty_run() {
    let missing = "ab".repeat(32);
    let f = fixture().job("named", &format!("[\"{missing}\"]")).build();
    f.contribute(1);
    f.approve(0);
    f.pass().await.unwrap();
    for _ in 0..5 {
        f.chain.mine(|_| {});
        f.pass().await.unwrap();
    }
    assert_eq!(
        f.decisions_since(0),
        ["deployed", "refused"],
        "{:#?}",
        f.entries()
    );
    let e = f.entries().pop().unwrap();
    assert!(
        e.reason.contains("never registered") && e.reason.contains(&missing),
        "{}",
        e.reason
    );
    assert_eq!(f.runner.runs.load(Ordering::Relaxed), 0);
}

/// A withdrawal read at the head stops the job that reads the dataset.
#[tokio::test]
async fn withdrawal_at_the_head_stops_the_job_reading_it() {
    let f = fixture().confirmations(2).job("hangs", "all").build();
    let sha = f.contribute(4);
    f.approve(0);
    f.chain.mine(|_| {});
    f.chain.mine(|_| {});
    f.pass().await.unwrap();
    f.job_running().await;
    f.chain.mine(|s| {
        for c in &mut s.contributions {
            if hex::encode(c.sha256.as_slice()) == sha {
                c.withdrawn = true;
            }
        }
    });
    f.pass().await.unwrap();
    f.jobs_idle().await;
    assert!(
        f.decisions_since(0).contains(&"withdrawn".to_string()),
        "{:#?}",
        f.entries()
    );
}

/// The loop in paused time: an outage of the reads (the cheap probe still
/// answers) stays in status on every pass until a full pass succeeds.
#[tokio::test(start_paused = true)]
async fn an_outage_stays_in_status_until_a_full_pass_succeeds() {
    let f = fixture().job("count", "all").build();
    f.approve(0);
    f.chain.set_reads_down(true);
    let (stop, task) = f.spawn_loop();
    // Every failed pass counts; the probe answering never clears it.
    let mut seen = 0;
    while seen < 20 {
        f.chain.mine(|_| {});
        tokio::time::sleep(Duration::from_millis(300)).await;
        let errors = f.metrics.read_errors.get();
        if errors > seen {
            seen = errors;
            let st = f.board.get();
            assert!(
                st.chain_error.is_some(),
                "status hid the outage after {errors} errors"
            );
            assert!(st.problems["chain"].message.contains("connection refused"));
        }
        if f.metrics.reconciles.get() > 0 {
            panic!("a pass succeeded while reads were down");
        }
    }
    assert!(f
        .metrics
        .encode()
        .contains("collective_problems{source=\"chain\"} 1"));
    f.chain.set_reads_down(false);
    let before = f.metrics.reconciles.get();
    while f.metrics.reconciles.get() == before {
        f.chain.mine(|_| {});
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(f.board.get().chain_error.is_none());
    assert!(f.log_size() > 0, "it deployed once the chain answered");
    // Fully down now: even the probe fails, and that shows too.
    f.chain.set_down(true);
    let errors = f.metrics.read_errors.get();
    while f.metrics.read_errors.get() < errors + 3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(f.board.get().problems["chain"]
        .message
        .contains("connection refused"));
    stop.cancel();
    task.await.unwrap();
}

/// Backoff: while reads fail the loop does not make a full pass per poll.
#[tokio::test(start_paused = true)]
async fn failing_passes_back_off() {
    let f = fixture().job("count", "all").build();
    f.chain.set_reads_down(true);
    let (stop, task) = f.spawn_loop();
    // 60 s at a 250 ms poll: 240 probes; with backoff (1, 2, 4, 8, 10, 10...)
    // far fewer failed passes.
    for _ in 0..240 {
        f.chain.mine(|_| {});
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let failed = f.metrics.read_errors.get();
    assert!(failed >= 3, "it kept trying: {failed}");
    assert!(failed <= 15, "no backoff: {failed} failed passes in 60 s");
    stop.cancel();
    task.await.unwrap();
}

/// A same-height reorg (new hash, same number) triggers a pass at once.
#[tokio::test(start_paused = true)]
async fn a_same_height_reorg_is_seen_by_the_probe() {
    let f = fixture().job("count", "all").build();
    let (stop, task) = f.spawn_loop();
    while f.metrics.reconciles.get() == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first pass logs the unapproved head once. Then the head block
    // is replaced by one approving the tree: within a poll (well before the
    // 10 s resync), it deploys.
    while f.log_size() == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(f.decisions_since(0), ["refused"]);
    let height = f.chain.head_ref().number;
    let a = f.approval(0);
    let b = f.chain.reorg_head(|s| {
        s.approvals.insert(a.tree_sha256, a);
    });
    assert_eq!(b.number, height, "same height");
    let start = tokio::time::Instant::now();
    while !f.decisions_since(0).contains(&"deployed".to_string()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "reorg not noticed: {:#?}",
            f.entries()
        );
    }
    stop.cancel();
    task.await.unwrap();
}

/// `/v1/refresh` is not an amplifier: a flood of requests costs a bounded
/// number of passes and chain reads.
#[tokio::test(start_paused = true)]
async fn a_refresh_flood_costs_a_bounded_number_of_passes() {
    use collective_controller::http::{RefreshGate, REFRESH_BURST, REFRESH_PER_SECOND};
    let f = fixture().job("count", "all").build();
    let (stop, task) = f.spawn_loop();
    while f.metrics.reconciles.get() == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gate = RefreshGate::new(f.control.fetch_requested.clone(), f.control.wake.clone());
    let (passes, calls) = (f.metrics.reconciles.get(), f.chain.calls());
    let mut accepted = 0u64;
    // 1,000 requests over 5 s of loop time, no new block.
    for _ in 0..1000 {
        if gate.request() {
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let extra = f.metrics.reconciles.get() - passes;
    let bound = u64::from(REFRESH_BURST + 6 * REFRESH_PER_SECOND);
    assert!(accepted >= 1, "a refresh gets through");
    assert!(
        extra <= bound,
        "{extra} passes for 1000 requests (bound {bound})"
    );
    // Each pass reads a bounded number of things; probes run at the poll.
    let reads = f.chain.calls() - calls;
    assert!(reads <= 20 + extra * 8 + 40, "{reads} chain reads");
    stop.cancel();
    task.await.unwrap();
}
