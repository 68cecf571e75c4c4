//! The requester flow of issue 6, as `scripts/demo.sh` tells it, with each
//! step's outcome asserted: contributors encrypt and register the example
//! data, a requester opens the `train-model` pull request on (a fake of)
//! GitHub, the node annotates it, the requester submits the proposal from
//! the PR, the DAO passes it, the merged tree is deployed and run, the
//! requester decrypts the model, an unapproved change is refused, and the
//! log audits (and a tampered copy does not). Then the heavy-node path: an
//! approved export re-encrypts the dataset to a second node, which imports
//! the copy, runs its own approved training job, and audits too.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use collective_attest::Decision;
use collective_chain::B256;
use collective_e2e::*;
use collective_github::fake::{FakeGithub, FakePull};
use collective_vault::NodeKeys;

const T: Duration = Duration::from_secs(90);
/// The origin `node_config` gives node 1's log.
const ORIGIN1: &str = "collective.test/node";
const ORIGIN2: &str = "collective.test/heavy-node";
const NODE2_ID: [u8; 32] = [9u8; 32];
const GH_TOKEN: &str = "gh-flow-token";
/// The placeholder recipient in the example export job (nobody holds its key).
const EXPORT_PLACEHOLDER: &str = "age197dm5n977r3ps4t6qyxtj98rgx3jgw8hj6udnukd7yjc2tzw3q3sgs25z4";

fn examples() -> PathBuf {
    workspace_root().join("examples")
}

/// Run the `collective` binary; its output, whatever the exit code.
async fn cli(args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let mut c = tokio::process::Command::new(collective_bin());
    c.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    Ok(c.output().await?)
}

/// Run the `collective` binary with `--json`, require exit 0, parse stdout.
async fn cli_json(args: &[&str], env: &[(&str, &str)]) -> Result<serde_json::Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = cli(&all, env).await?;
    if !out.status.success() {
        bail!(
            "collective {args:?} exited {:?}:\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("collective {args:?}: stdout is not JSON"))
}

/// `collective audit` of a node's log against the chain and a repository.
async fn audit(
    devnet: &Devnet,
    log: &Path,
    keys: &NodeKeys,
    origin: &str,
    node_id: [u8; 32],
    repo: &Path,
    state: &Path,
) -> Result<Output> {
    let a = &devnet.file.deployment.addresses;
    let vkey = keys.log_verifier_key(origin)?;
    cli(
        &[
            "audit",
            "--log",
            log.to_str().unwrap(),
            "--log-key",
            &vkey,
            "--state",
            state.to_str().unwrap(),
            "--rpc",
            devnet.url(),
            "--node-registry",
            &format!("{:#x}", a.node_registry),
            "--code-registry",
            &format!("{:#x}", a.code_registry),
            "--node-id",
            &format!("0x{}", hex::encode(node_id)),
            "--repo",
            repo.to_str().unwrap(),
        ],
        &[],
    )
    .await
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()?;
    if !st.success() {
        bail!("cp -r {} {}", from.display(), to.display());
    }
    Ok(())
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Fetch the `out/` outputs of a finished job from the node's outbox, check
/// each against the digest in the log entry, decrypt them as `who`.
async fn fetch_outputs(
    node: &RunningNode,
    fin: &serde_json::Value,
    who: &Requester,
) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
    let tree = fin["tree_sha256"].as_str().context("tree")?;
    let job = fin["job"].as_str().context("job")?;
    let mut got = std::collections::BTreeMap::new();
    for o in fin["outputs"].as_array().context("outputs")? {
        let name = o["name"].as_str().context("name")?;
        let Some(file) = name.strip_prefix("out/") else {
            continue;
        };
        let ct = node
            .bytes(&format!("/v1/outbox/{tree}/{job}/{name}"))
            .await?;
        assert_eq!(
            o["sha256"],
            collective_vault::sha256_hex(&ct).as_str(),
            "outbox {name} differs from the logged digest"
        );
        let plain = who
            .decrypt(&ct)
            .with_context(|| format!("decrypt {name}"))?;
        got.insert(
            file.trim_end_matches(".age").to_string(),
            serde_json::from_slice(&plain).with_context(|| format!("{name} is not JSON"))?,
        );
    }
    Ok(got)
}

fn accuracy(metrics: &serde_json::Value) -> f64 {
    metrics["test"]["accuracy"].as_f64().unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requester_flow_from_pull_request_to_audit_and_heavy_node_export() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    // The heavy node's RSA-4096 key takes a while: generate it meanwhile.
    let keys2 = tokio::task::spawn_blocking(NodeKeys::generate);

    // ---- 1. devnet, node keys, node registered through the Governor.
    let devnet = Devnet::spawn(d).await?;
    let addrs = devnet.file.deployment.addresses;
    let dirs = NodeDirs::new(&d.join("node"))?;
    let keys1 = node_keys();
    devnet.register_node(NODE_ID, keys1, ORIGIN1).await?;
    let chain = devnet.client("spare1").await?;
    let rec = chain
        .node(B256::from(NODE_ID))
        .await?
        .context("node 1 is not in NodeRegistry after the proposal executed")?;
    assert_eq!(rec.encryption_recipient, keys1.recipient());
    assert_eq!(rec.log_public_key, keys1.log_verifier_key(ORIGIN1)?);

    // ---- 2. three contributors encrypt and register the example data.
    let mut csvs: Vec<PathBuf> = std::fs::read_dir(examples().join("data"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    csvs.sort();
    assert_eq!(csvs.len(), 3, "examples/data holds three CSV files");
    let store1 = dirs.root.join("store");
    let node_pub = d.join("node1.pub");
    std::fs::write(&node_pub, format!("{}\n", keys1.recipient()))?;
    let rpc = devnet.url().to_string();
    let data_registry = format!("{:#x}", addrs.data_registry);
    let node1_hex = format!("0x{}", hex::encode(NODE_ID));
    for (who, csv) in ["contributor", "spare1", "spare2"].iter().zip(&csvs) {
        let key = devnet.file.account(who)?.private_key.clone();
        let mut args: Vec<String> = vec!["contribute".into()];
        if *who == "spare2" {
            // Any stock age client works: this contributor uses `age -R`.
            let ct = d.join("spare2.csv.age");
            let st = std::process::Command::new("age")
                .arg("-R")
                .arg(&node_pub)
                .arg("-o")
                .arg(&ct)
                .arg(csv)
                .status()
                .context("the age CLI is required (apt-get install age)")?;
            assert!(st.success(), "age -R failed");
            args.extend(["--encrypted".into(), ct.display().to_string()]);
        } else {
            args.extend([
                csv.display().to_string(),
                "--to".into(),
                node_pub.display().to_string(),
            ]);
        }
        args.extend([
            "--store".into(),
            store1.display().to_string(),
            "--register".into(),
            "--rpc".into(),
            rpc.clone(),
            "--data-registry".into(),
            data_registry.clone(),
            "--node-id".into(),
            node1_hex.clone(),
            "--private-key".into(),
            key,
        ]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = cli_json(&a, &[]).await?;
        let v = if v.is_array() { v[0].clone() } else { v };
        assert!(v["registered_tx"].is_string(), "{who} not registered: {v}");
    }
    let contributions = chain.contributions(B256::from(NODE_ID), 0).await?;
    assert_eq!(contributions.len(), 3, "{contributions:?}");
    for f in files_under(&store1) {
        let b = std::fs::read(&f)?;
        assert!(
            b.starts_with(b"age-encryption.org/v1\n"),
            "{} in the store is not an age file",
            f.display()
        );
        assert!(
            !String::from_utf8_lossy(&b).contains("systolic_bp"),
            "plaintext in the store: {}",
            f.display()
        );
    }

    // ---- 3. the repository on (the fake) GitHub: a bare repository the
    // node fetches from and that holds refs/pull/N/head; `repo` is the
    // requester's and maintainers' clone. The requester pushes the
    // train-model branch and opens the pull request.
    let repo = JobRepo::init(&d.join("repo"))?;
    let (_, base) = repo.commit(
        &[("README.md", Some("# collective jobs\n"))],
        "Initial commit",
    )?;
    let github = d.join("github.git");
    git(
        d,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            github.to_str().unwrap(),
        ],
    )?;
    git(
        &repo.path,
        &["remote", "add", "origin", github.to_str().unwrap()],
    )?;
    git(&repo.path, &["push", "-q", "origin", "main"])?;
    git(&repo.path, &["checkout", "-q", "-b", "pr/train-model"])?;
    copy_dir(
        &examples().join("pull-requests/train-model/jobs"),
        &repo.path.join("jobs"),
    )?;
    let (ids, head) = repo.commit(&[], "Train a diabetes-risk model")?;
    git(
        &repo.path,
        &[
            "push",
            "-q",
            "origin",
            "pr/train-model",
            "pr/train-model:refs/pull/1/head",
        ],
    )?;
    git(&repo.path, &["checkout", "-q", "main"])?;
    let requester = Requester::default();
    let fake = FakeGithub::start(
        "acme",
        "jobs",
        GH_TOKEN,
        "collective-bot",
        &format!("file://{}", github.display()),
    )
    .await;
    let title = "Train a diabetes-risk model";
    fake.open_pull(FakePull {
        number: 1,
        title: title.into(),
        body: format!(
            "Logistic regression on the pooled data; outputs weights and metrics only.\n\nRecipient: {}\n",
            requester.recipient()
        ),
        head_sha: head.clone(),
        head_ref: "pr/train-model".into(),
        base_ref: "main".into(),
        base_sha: base.clone(),
        author: "requester".into(),
    });

    // ---- 4. the node, with its GitHub section.
    let mut cfg = node_config(&devnet, &repo.path, &dirs, 0);
    cfg.repository.path = None;
    cfg.repository.url = Some(format!("file://{}", github.display()));
    cfg.repository.fetch_interval_secs = 1;
    std::env::set_var(
        "COLLECTIVE_E2E_OPERATOR_KEY",
        &devnet.file.account("operator")?.private_key,
    );
    cfg.chain.operator_key_env = Some("COLLECTIVE_E2E_OPERATOR_KEY".into());
    cfg.log.anchor_interval_secs = 1;
    std::env::set_var("COLLECTIVE_E2E_FLOW_GH_TOKEN", GH_TOKEN);
    cfg.github = Some(collective_controller::config::GithubSection {
        owner: "acme".into(),
        repo: "jobs".into(),
        api_url: fake.api_url(),
        git_remote: None,
        interval_secs: 1,
        target_url: None,
        token_env: "COLLECTIVE_E2E_FLOW_GH_TOKEN".into(),
    });
    let node1 = RunningNode::start(cfg).await?;

    // The node posts a pending status and one comment with the tree ids and
    // the proposal command.
    let pending = eventually(T, "a status on the PR head", || async {
        fake.statuses(&head).first().cloned()
    })
    .await?;
    assert_eq!(pending.0, "pending", "{pending:?}");
    let comment = eventually(T, "the node's comment", || async {
        fake.comments(1).first().cloned()
    })
    .await?;
    let body = comment["body"].as_str().unwrap_or("");
    assert!(body.contains(&ids.sha256), "{body}");
    assert!(body.contains(&ids.sha1), "{body}");
    assert!(
        body.contains(&format!(
            "collective proposal submit --tree-sha256 {} --tree-sha1 {}",
            ids.sha256, ids.sha1
        )),
        "{body}"
    );

    // ---- 5. the requester submits the proposal from the PR; the DAO
    // votes; the timelock executes.
    let devnet_yaml = devnet.yaml.display().to_string();
    let mirror = d.join("requester-mirror.git").display().to_string();
    let pr_url = fake.pr_url(1);
    let api = fake.api_url();
    let sub = cli_json(
        &[
            "proposal",
            "submit",
            "--devnet",
            &devnet_yaml,
            "--as",
            "requester",
            "--pr",
            &pr_url,
            "--api-url",
            &api,
            "--mirror-dir",
            &mirror,
        ],
        &[("GITHUB_TOKEN", GH_TOKEN)],
    )
    .await?;
    assert_eq!(sub["request"]["tree_sha256"], format!("0x{}", ids.sha256));
    assert_eq!(sub["request"]["tree_sha1"], format!("0x{}", ids.sha1));
    assert_eq!(
        sub["request"]["recipients"],
        serde_json::json!([requester.recipient()])
    );
    let pid = sub["id"].as_str().context("proposal id")?.to_string();
    for v in ["voter1", "voter2", "voter3"] {
        cli_json(
            &[
                "proposal",
                "vote",
                &pid,
                "--devnet",
                &devnet_yaml,
                "--as",
                v,
            ],
            &[],
        )
        .await?;
    }
    for step in ["queue", "execute"] {
        cli_json(
            &[
                "proposal",
                step,
                &pid,
                "--devnet",
                &devnet_yaml,
                "--as",
                "voter1",
            ],
            &[],
        )
        .await?;
    }
    let approval = chain
        .approval(ids.sha256.parse::<B256>()?, 0)
        .await?
        .context("no approval on chain after execute")?;
    assert_eq!(approval.recipients, vec![requester.recipient()]);
    assert_eq!(approval.uri, pr_url);
    let approved = eventually(T, "an approved status", || async {
        fake.statuses(&head)
            .into_iter()
            .find(|(_, d)| d.contains("approved"))
    })
    .await?;
    assert_eq!(approved.0, "success", "{approved:?}");
    assert!(
        node1.get("/v1/status").await?["deployed"].is_null(),
        "deployed before the merge"
    );

    // ---- 6. the PR is merged; the node deploys the tree and runs the job.
    // The maintainers merge it; GitHub closes the PR, and the node keeps
    // following it until its tree is deployed.
    git(&repo.path, &["merge", "-q", "--ff-only", "pr/train-model"])?;
    git(&repo.path, &["push", "-q", "origin", "main"])?;
    fake.merge_pull(1, &head);
    let deployed = node1.wait_decision("deployed", None, T).await?;
    assert_eq!(deployed["tree_sha256"], ids.sha256.as_str());
    assert_eq!(deployed["commit"], head.as_str());
    let fin = node1
        .wait_decision("job-finished", Some("train-model"), T)
        .await?;
    assert_eq!(fin["exit_status"], 0, "{fin}");
    let started = node1
        .wait_decision("job-started", Some("train-model"), T)
        .await?;
    assert!(
        started["reason"]
            .as_str()
            .unwrap_or("")
            .contains("3 dataset"),
        "the job did not get the three contributions: {started}"
    );
    let want = format!("deployed, log index {}", deployed["index"]);
    let st = eventually(T, "a deployed status", || async {
        fake.statuses(&head)
            .into_iter()
            .find(|(_, d)| d.starts_with("deployed"))
    })
    .await?;
    assert_eq!(st, ("success".to_string(), want));
    // The node edits its one comment instead of adding more.
    eventually(T, "the comment to say deployed", || async {
        let c = fake.comments(1);
        c.first()?["body"]
            .as_str()?
            .contains("deployed by the node")
            .then_some(())
    })
    .await?;
    // Two more sync rounds (each lists the pulls): still one comment.
    let seen = fake.requests().len();
    eventually(T, "two more GitHub sync rounds", || async {
        (fake.requests().len() >= seen + 2).then_some(())
    })
    .await?;
    assert_eq!(fake.comments(1).len(), 1, "{:#?}", fake.comments(1));
    let reqs = fake.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|q| q.authorized),
        "a GitHub request went without the token: {reqs:?}"
    );

    // ---- 7. the requester fetches and decrypts the outputs.
    let outs = fetch_outputs(&node1, &fin, &requester).await?;
    assert_eq!(
        outs.keys().cloned().collect::<Vec<_>>(),
        ["metrics.json", "model.json"]
    );
    assert_eq!(outs["model.json"]["kind"], "logistic-regression");
    assert!(outs["model.json"]["weights"].is_object());
    let m = &outs["metrics.json"];
    assert_eq!(m["files"], 3, "{m}");
    assert!(
        (0.6..=1.0).contains(&accuracy(m)),
        "implausible test accuracy: {m}"
    );
    assert!(
        Requester::default()
            .decrypt(
                &node1
                    .bytes(&format!(
                        "/v1/outbox/{}/train-model/out/model.json.age",
                        ids.sha256
                    ))
                    .await?
            )
            .is_err(),
        "an outsider decrypted the model"
    );

    // ---- 8. an unapproved change on main: refused and logged; the
    // approved tree stays deployed.
    let train_py = repo.path.join("jobs/train-model/train.py");
    let original_train = std::fs::read_to_string(&train_py)?;
    let (bad, _) = repo.commit(
        &[(
            "jobs/train-model/train.py",
            Some(&format!(
                "{original_train}\nprint(open('/data/' + __import__('os').listdir('/data')[0]).read())\n"
            )),
        )],
        "Print the raw data (not approved)",
    )?;
    git(&repo.path, &["push", "-q", "origin", "main"])?;
    let refused = eventually(T, "the refusal of the unapproved change", || async {
        node1
            .recent()
            .await
            .ok()?
            .into_iter()
            .find(|e| e["decision"] == "refused" && e["tree_sha256"] == bad.sha256.as_str())
    })
    .await?;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no approval"),
        "{refused}"
    );
    assert_eq!(
        node1.get("/v1/status").await?["deployed"]["sha256"],
        ids.sha256.as_str(),
        "the approved tree must stay deployed"
    );

    // ---- 9. the heavy node: own keys, registered with its own id.
    let keys2 = keys2.await??;
    let root2 = d.join("heavy");
    keys2.save(&root2.join("keys"), None)?;
    let dirs2 = NodeDirs::new(&root2)?;
    devnet.register_node(NODE2_ID, &keys2, ORIGIN2).await?;
    assert_eq!(
        chain
            .node(B256::from(NODE2_ID))
            .await?
            .context("node 2 is not in NodeRegistry")?
            .encryption_recipient,
        keys2.recipient()
    );

    // The export PR (merged here directly): the bad change reverted, the
    // export job added with the heavy node's recipient; the DAO approves it
    // with that recipient.
    let export_yaml = std::fs::read_to_string(
        examples().join("pull-requests/export-to-heavy-node/jobs/export-to-heavy-node/job.yaml"),
    )?;
    assert!(export_yaml.contains(EXPORT_PLACEHOLDER));
    let export_yaml =
        export_yaml.replace(EXPORT_PLACEHOLDER, &format!("\"{}\"", keys2.recipient()));
    let (xids, _) = repo.commit(
        &[
            ("jobs/train-model/train.py", Some(&original_train)),
            ("jobs/export-to-heavy-node/job.yaml", Some(&export_yaml)),
        ],
        "Export the dataset to the lab's heavy node",
    )?;
    git(&repo.path, &["push", "-q", "origin", "main"])?;
    devnet
        .approve(
            &xids,
            &[keys2.recipient().to_string(), requester.recipient()],
            0,
        )
        .await?;
    let exported = eventually(T, "the export", || async {
        node1
            .recent()
            .await
            .ok()?
            .into_iter()
            .find(|e| e["decision"] == "exported" && e["tree_sha256"] == xids.sha256.as_str())
    })
    .await?;
    assert_eq!(exported["job"], "export-to-heavy-node");
    let xouts = exported["outputs"].as_array().context("outputs")?.clone();
    assert_eq!(xouts.len(), 3, "{exported}");

    // The lab fetches the copy from node 1's outbox and imports it into the
    // heavy node's store, registered to node 2.
    let import = d.join("import");
    std::fs::create_dir_all(&import)?;
    let mut import_args: Vec<String> = vec!["contribute".into()];
    for o in &xouts {
        let name = o["name"].as_str().context("name")?;
        let ct = node1
            .bytes(&format!(
                "/v1/outbox/{}/export-to-heavy-node/{name}",
                xids.sha256
            ))
            .await?;
        assert_eq!(o["sha256"], collective_vault::sha256_hex(&ct).as_str());
        assert!(
            requester.decrypt(&ct).is_err(),
            "the export is readable by someone other than the heavy node"
        );
        let f = import.join(Path::new(name).file_name().context("file name")?);
        std::fs::write(&f, &ct)?;
        import_args.extend(["--encrypted".into(), f.display().to_string()]);
    }
    import_args.extend([
        "--store".into(),
        dirs2.root.join("store").display().to_string(),
        "--register".into(),
        "--rpc".into(),
        rpc.clone(),
        "--data-registry".into(),
        data_registry.clone(),
        "--node-id".into(),
        format!("0x{}", hex::encode(NODE2_ID)),
        "--private-key".into(),
        devnet.file.account("requester")?.private_key.clone(),
    ]);
    let a: Vec<&str> = import_args.iter().map(String::as_str).collect();
    cli_json(&a, &[]).await?;
    assert_eq!(chain.contributions(B256::from(NODE2_ID), 0).await?.len(), 3);

    // The heavy node's own repository and approved training job.
    let repo2 = JobRepo::init(&d.join("heavy-repo"))?;
    copy_dir(
        &examples().join("pull-requests/export-to-heavy-node/heavy-node/jobs"),
        &repo2.path.join("jobs"),
    )?;
    let (hids, _) = repo2.commit(&[], "train-mlp on the exported copy")?;
    let lab = Requester::default();
    let mut cfg2 = node_config(&devnet, &repo2.path, &dirs2, 0);
    cfg2.node.id = format!("0x{}", hex::encode(NODE2_ID));
    cfg2.log.origin = ORIGIN2.into();
    let node2 = RunningNode::start(cfg2).await?;
    devnet.approve(&hids, &[lab.recipient()], 0).await?;
    let fin2 = node2
        .wait_decision("job-finished", Some("train-mlp"), Duration::from_secs(150))
        .await?;
    assert_eq!(fin2["exit_status"], 0, "{fin2}");
    assert_eq!(fin2["tree_sha256"], hids.sha256.as_str());
    let outs2 = fetch_outputs(&node2, &fin2, &lab).await?;
    let m2 = &outs2["metrics.json"];
    assert_eq!(
        m2["files"], 3,
        "the heavy node did not train on the copy: {m2}"
    );
    assert!(
        (0.6..=1.0).contains(&accuracy(m2)),
        "implausible MLP accuracy: {m2}"
    );
    assert!(outs2.contains_key("model.json"));

    // ---- 10. both logs: entries, and the audit; a tampered copy fails.
    // Node 1 anchors every second: wait until its anchor covers the log.
    eventually(
        Duration::from_secs(30),
        "node 1 to anchor its whole log",
        || async {
            let s = node1.get("/v1/status").await.ok()?;
            (s["last_anchor"]["size"].as_u64()? == s["log_size"].as_u64()?).then_some(())
        },
    )
    .await?;
    node1.stop().await;
    node2.stop().await;
    let log1 = read_log_of(&dirs.log_dir(), ORIGIN1, keys1)?;
    let log2 = read_log_of(&dirs2.log_dir(), ORIGIN2, &keys2)?;
    assert!(log1.iter().any(|(_, s, p)| p.decision == Decision::Exported
        && s.tree_sha256 == xids.sha256
        && p.job.as_deref() == Some("export-to-heavy-node")));
    assert!(log1
        .iter()
        .any(|(_, s, p)| p.decision == Decision::Refused && s.tree_sha256 == bad.sha256));
    assert!(log2
        .iter()
        .any(|(_, s, p)| p.decision == Decision::JobFinished
            && s.tree_sha256 == hids.sha256
            && p.job.as_deref() == Some("train-mlp")));

    let state1 = d.join("auditor1.state");
    let out = audit(
        &devnet,
        &dirs.log_dir(),
        keys1,
        ORIGIN1,
        NODE_ID,
        &github,
        &state1,
    )
    .await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "audit of node 1: {}",
        show(&out)
    );
    // Again with the saved state: consistent with what the auditor saw.
    let out = audit(
        &devnet,
        &dirs.log_dir(),
        keys1,
        ORIGIN1,
        NODE_ID,
        &github,
        &state1,
    )
    .await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "re-audit of node 1: {}",
        show(&out)
    );
    let state2 = d.join("auditor2.state");
    let out = audit(
        &devnet,
        &dirs2.log_dir(),
        &keys2,
        ORIGIN2,
        NODE2_ID,
        &repo2.path,
        &state2,
    )
    .await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "audit of node 2: {}",
        show(&out)
    );

    // One bit flipped in an entry bundle of a copy of node 1's log.
    let tampered = d.join("tampered-log");
    copy_dir(&dirs.log_dir(), &tampered)?;
    // The largest bundle is the one the current checkpoint covers (older
    // checkpoints' partial bundles stay served beside it).
    let bundle = files_under(&tampered)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/entries/"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .context("no entry bundle in the log")?;
    let mut b = std::fs::read(&bundle)?;
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&bundle, &b)?;
    let out = audit(
        &devnet,
        &tampered,
        keys1,
        ORIGIN1,
        NODE_ID,
        &github,
        &d.join("auditor3.state"),
    )
    .await?;
    assert_eq!(out.status.code(), Some(2), "tampered audit: {}", show(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("[edited-entry]") || report.contains("[entry-signature]"),
        "the report does not name the edited entry: {}",
        show(&out)
    );
    Ok(())
}
