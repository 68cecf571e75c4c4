//! collective-policy: every decision outcome as a table, manifest errors
//! that name file, field and fix, and property tests of the parser.

use collective_policy::{
    decide, ApprovalView, DatasetSelector, Decision, DecisionInput, ExportSpec, JobKind, JobLimits,
    JobManifest, NodePolicy, PolicyError, Reason, TreeFacts, Verdict,
};
use proptest::prelude::*;

const SHA1: &str = "95da398f5a7b874fe739c346a6c8f855c93b3d81";
const SHA256: &str = "ed48bc65a903199daccdad401f950c685bef52b87edbf50d3e78b771c2883fb7";
const OTHER_SHA256: &str = "1fea0733b5fdfe94a917ebda6327a4ca5456fe6841f54b832688106ba419aefb";
const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
const DATASET: &str = "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813";

const BATCH_YAML: &str = "\
kind: batch
description: mean age per region
command: [python3, stats.py]
datasets: all
limits:
  cpu_seconds: 600
  memory: 512MiB
  wall_seconds: 900
  output: 64MiB
  processes: 32
outputs: [stats.json]
";

fn export_yaml(recipient: &str) -> String {
    format!(
        "kind: export\ndatasets: [{DATASET}]\nlimits: {{cpu_seconds: 60, memory: 1GiB, wall_seconds: 600, output: 512MiB, processes: 4}}\nexport:\n  recipient: \"{recipient}\"\n"
    )
}

fn batch() -> JobManifest {
    JobManifest::parse("jobs/stats/job.yaml", BATCH_YAML).unwrap()
}

fn approval() -> ApprovalView {
    ApprovalView {
        tree_sha256: SHA256.into(),
        tree_sha1: SHA1.into(),
        recipients: vec![RECIPIENT.into()],
        expires_at: 2_000_000_000,
        revoked: false,
        revoke_reason: String::new(),
    }
}

/// The facts of a tree that should deploy; each table row changes one thing.
#[derive(Clone)]
struct Case {
    sha1: &'static str,
    disk: Option<&'static str>,
    approval: Option<ApprovalView>,
    now: u64,
    paused: bool,
    manifests: Vec<(String, Result<JobManifest, PolicyError>)>,
    policy: NodePolicy,
}

fn good() -> Case {
    Case {
        sha1: SHA1,
        disk: Some(SHA256),
        approval: Some(approval()),
        now: 1_900_000_000,
        paused: false,
        manifests: vec![("stats".into(), Ok(batch()))],
        policy: NodePolicy::default(),
    }
}

fn run(c: &Case) -> Decision {
    decide(&DecisionInput {
        tree: TreeFacts {
            sha1: c.sha1,
            sha256_from_disk: c.disk,
        },
        approval: c.approval.as_ref(),
        now: c.now,
        paused: c.paused,
        manifests: &c.manifests,
        policy: &c.policy,
    })
}

fn with(f: impl FnOnce(&mut Case)) -> Case {
    let mut c = good();
    f(&mut c);
    c
}

#[test]
fn every_outcome() {
    type Check = fn(&Reason) -> bool;
    let table: Vec<(&str, Case, Check)> = vec![
        (
            "approved",
            good(),
            |r| matches!(r, Reason::Approved { jobs, .. } if jobs == &["stats"]),
        ),
        (
            "approved, never expires",
            with(|c| c.approval.as_mut().unwrap().expires_at = 0),
            |r| matches!(r, Reason::Approved { expires_at: 0, .. }),
        ),
        (
            "not approved",
            with(|c| c.approval = None),
            |r| matches!(r, Reason::NotApproved { tree_sha1 } if tree_sha1 == SHA1),
        ),
        (
            "approved but expired",
            with(|c| c.now = 2_000_000_000),
            |r| {
                matches!(
                    r,
                    Reason::Expired {
                        expires_at: 2_000_000_000,
                        now: 2_000_000_000
                    }
                )
            },
        ),
        (
            "revoked",
            with(|c| {
                let a = c.approval.as_mut().unwrap();
                a.revoked = true;
                a.revoke_reason = "leaks data".into();
            }),
            |r| matches!(r, Reason::Revoked { reason } if reason == "leaks data"),
        ),
        ("registry paused", with(|c| c.paused = true), |r| {
            matches!(r, Reason::RegistryPaused)
        }),
        (
            "sha1 matches, sha256 from disk does not",
            with(|c| c.disk = Some(OTHER_SHA256)),
            |r| matches!(r, Reason::Sha256Mismatch { approved, recomputed } if approved == SHA256 && recomputed == OTHER_SHA256),
        ),
        ("not recomputed from disk", with(|c| c.disk = None), |r| {
            matches!(r, Reason::NotVerifiedOnDisk)
        }),
        (
            "approval for another sha1",
            with(|c| c.sha1 = "0000000000000000000000000000000000000000"),
            |r| matches!(r, Reason::Sha1Mismatch { approved, .. } if approved == SHA1),
        ),
        (
            "manifest invalid",
            with(|c| {
                let e = JobManifest::parse(
                    "jobs/bad/job.yaml",
                    "kind: batch\ncommand: [x]\nlimits: {memroy: 1GiB}\n",
                )
                .unwrap_err();
                c.manifests.push(("bad".into(), Err(e)));
            }),
            |r| matches!(r, Reason::ManifestInvalid { job, error } if job == "bad" && error.contains("jobs/bad/job.yaml")),
        ),
        (
            "bad job name",
            with(|c| c.manifests[0].0 = "Stats Job".into()),
            |r| matches!(r, Reason::ManifestInvalid { job, error } if job == "Stats Job" && error.contains("invalid job name")),
        ),
        (
            "job kind not allowed",
            with(|c| {
                c.policy.allowed_kinds = [JobKind::Batch].into_iter().collect();
                c.manifests = vec![(
                    "copy".into(),
                    JobManifest::parse("f", &export_yaml(RECIPIENT)),
                )];
            }),
            |r| matches!(r, Reason::KindNotAllowed { job, kind: JobKind::Export, .. } if job == "copy"),
        ),
        (
            "limits above the node's maximum",
            with(|c| c.policy.max_limits.memory_bytes = 256 << 20),
            |r| {
                matches!(r, Reason::LimitAboveMaximum { job, limit, requested, maximum }
                if job == "stats" && limit == "memory" && *requested == 512 << 20 && *maximum == 256 << 20)
            },
        ),
        (
            "export recipient not in the approval",
            with(|c| {
                let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKey";
                c.manifests = vec![("copy".into(), JobManifest::parse("f", &export_yaml(other)))];
            }),
            |r| matches!(r, Reason::RecipientNotApproved { job, .. } if job == "copy"),
        ),
        ("no jobs", with(|c| c.manifests.clear()), |r| {
            matches!(r, Reason::NoJobs)
        }),
        (
            "too many jobs",
            with(|c| {
                c.policy.max_jobs = 1;
                c.manifests.push(("second".into(), Ok(batch())));
            }),
            |r| matches!(r, Reason::TooManyJobs { count: 2, max: 1 }),
        ),
        (
            "batch outputs with nobody to encrypt to",
            with(|c| c.approval.as_mut().unwrap().recipients.clear()),
            |r| matches!(r, Reason::NoRecipients { job } if job == "stats"),
        ),
    ];
    for (name, case, check) in table {
        let d = run(&case);
        let approved = name.starts_with("approved") && !name.contains("expired");
        assert_eq!(d.allowed, approved, "{name}: {d:?}");
        assert_eq!(
            d.verdict,
            if approved {
                Verdict::Approved
            } else {
                Verdict::Refused
            },
            "{name}"
        );
        assert!(
            d.reasons.iter().any(check),
            "{name}: reasons {:?}",
            d.reasons
        );
        // A refusal carries only refusal reasons, each with a sentence.
        if !approved {
            assert!(
                d.reasons.iter().all(Reason::is_refusal),
                "{name}: {:?}",
                d.reasons
            );
        }
        assert!(!d.summary().is_empty());
    }
}

#[test]
fn export_with_an_approved_recipient_deploys() {
    let c = with(|c| {
        c.manifests = vec![(
            "copy".into(),
            JobManifest::parse("f", &export_yaml(RECIPIENT)),
        )]
    });
    assert!(run(&c).allowed, "{:?}", run(&c));
}

#[test]
fn every_reason_is_reported_at_once() {
    let c = with(|c| {
        c.paused = true;
        c.now = 3_000_000_000;
        c.disk = Some(OTHER_SHA256);
        c.policy.max_limits.cpu_seconds = 1;
    });
    let d = run(&c);
    let codes: Vec<String> = d
        .reasons
        .iter()
        .map(|r| {
            serde_json::to_value(r).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        codes,
        [
            "registry-paused",
            "expired",
            "sha256-mismatch",
            "limit-above-maximum"
        ]
    );
}

#[test]
fn decision_serializes_with_codes() {
    let v = serde_json::to_value(run(&with(|c| c.paused = true))).unwrap();
    assert_eq!(v["verdict"], "refused");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["reasons"][0]["code"], "registry-paused");
    assert_eq!(
        run(&with(|c| c.paused = true)).summary(),
        "the code registry is paused"
    );
}

// ---------------------------------------------------------------- manifests

#[test]
fn full_manifest_parses() {
    let m = batch();
    assert_eq!(m.kind, JobKind::Batch);
    assert_eq!(m.command, ["python3", "stats.py"]);
    assert_eq!(m.datasets, DatasetSelector::All);
    assert_eq!(
        m.limits,
        JobLimits {
            cpu_seconds: Some(600),
            memory_bytes: Some(512 << 20),
            wall_seconds: Some(900),
            output_bytes: Some(64 << 20),
            processes: Some(32)
        }
    );
    assert_eq!(
        m.outputs.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        ["stats.json"]
    );
    let e = JobManifest::parse("f", &export_yaml(RECIPIENT)).unwrap();
    assert_eq!(
        e.export,
        Some(ExportSpec {
            recipient: RECIPIENT.into()
        })
    );
    assert_eq!(e.datasets, DatasetSelector::List(vec![DATASET.into()]));
    // Byte spellings of the sizes are accepted too.
    let bytes = BATCH_YAML
        .replace("memory: 512MiB", "memory_bytes: 536870912")
        .replace("output: 64MiB", "output_bytes: 67108864");
    assert_eq!(JobManifest::parse("f", &bytes).unwrap(), m);
}

/// (name, yaml, field the message must name, words the fix must contain)
#[test]
fn manifest_errors_name_file_field_and_fix() {
    let table: Vec<(&str, String, &str, &str)> = vec![
        (
            "unknown field",
            BATCH_YAML.replace("outputs:", "outptus:"),
            "unknown field `outptus`, expected one of",
            "remove `outptus` or correct its spelling",
        ),
        (
            "unknown limit",
            BATCH_YAML.replace("processes:", "procs:"),
            "unknown field `procs`",
            "processes",
        ),
        (
            "bad kind",
            BATCH_YAML.replace("kind: batch", "kind: stream"),
            "unknown variant `stream`",
            "batch",
        ),
        (
            "bad size",
            BATCH_YAML.replace("512MiB", "12XB"),
            "limits.memory",
            "512MiB",
        ),
        (
            "missing kind",
            BATCH_YAML.replace("kind: batch\n", ""),
            "missing field `kind`",
            "add `kind:`",
        ),
        (
            "relative program",
            BATCH_YAML.replace("[python3, stats.py]", "[bin/run, x]"),
            "command[0]",
            "/job/run.sh",
        ),
        (
            "datasets number",
            BATCH_YAML.replace("datasets: all", "datasets: 5"),
            "datasets: invalid type: integer `5`",
            "",
        ),
        (
            "datasets word",
            BATCH_YAML.replace("datasets: all", "datasets: everything"),
            "datasets",
            "list of dataset sha256 ids",
        ),
        (
            "bad dataset id",
            BATCH_YAML.replace("datasets: all", "datasets: [abc]"),
            "datasets[0]",
            "64 lowercase hex",
        ),
        (
            "duplicate dataset",
            BATCH_YAML.replace(
                "datasets: all",
                &format!("datasets: [{DATASET}, {DATASET}]"),
            ),
            "datasets[1]",
            "once",
        ),
        (
            "no command",
            BATCH_YAML.replace("command: [python3, stats.py]\n", ""),
            "command",
            "command: [python3, /job/stats.py]",
        ),
        (
            "command as string",
            BATCH_YAML.replace("[python3, stats.py]", "python3 stats.py"),
            "command",
            "sequence",
        ),
        (
            "zero limit",
            BATCH_YAML.replace("cpu_seconds: 600", "cpu_seconds: 0"),
            "limits.cpu_seconds",
            "positive",
        ),
        (
            "negative limit",
            BATCH_YAML.replace("cpu_seconds: 600", "cpu_seconds: -5"),
            "cpu_seconds",
            "",
        ),
        (
            "escaping output",
            BATCH_YAML.replace("[stats.json]", "[../../etc/passwd]"),
            "outputs[0]",
            "relative to /out",
        ),
        (
            "absolute output",
            BATCH_YAML.replace("[stats.json]", "[/etc/passwd]"),
            "outputs[0]",
            "relative to /out",
        ),
        (
            "export on batch",
            format!("{BATCH_YAML}export: {{recipient: {RECIPIENT}}}\n"),
            "export",
            "kind: export",
        ),
        (
            "export without recipient",
            export_yaml(RECIPIENT).replace("export:\n  recipient", "exprt:\n  recipient"),
            "unknown field `exprt`",
            "",
        ),
        (
            "export missing",
            export_yaml(RECIPIENT)
                .split("export:")
                .next()
                .unwrap()
                .to_string(),
            "export",
            "add `export:",
        ),
        (
            "export bad recipient",
            export_yaml("bob@example.com"),
            "export.recipient",
            "age1",
        ),
        (
            "export with command",
            format!("{}command: [sh]\n", export_yaml(RECIPIENT)),
            "command",
            "remove `command`",
        ),
        (
            "not a mapping",
            "- just\n- a list\n".to_string(),
            "invalid type",
            "",
        ),
        ("empty document", String::new(), "", ""),
        ("syntax error", "kind: [batch\n".to_string(), "", ""),
        (
            "too large",
            format!("{BATCH_YAML}description: {}\n", "x".repeat(70_000)),
            ".",
            "small",
        ),
    ];
    for (name, yaml, field, fix) in table {
        let e = JobManifest::parse("jobs/stats/job.yaml", &yaml).expect_err(name);
        let msg = e.to_string();
        assert!(msg.starts_with("jobs/stats/job.yaml: "), "{name}: {msg}");
        assert!(msg.contains(field), "{name}: {field:?} not in {msg}");
        assert!(msg.contains(fix), "{name}: {fix:?} not in {msg}");
        assert_eq!(e.file(), "jobs/stats/job.yaml");
    }
}

#[test]
fn omitted_limits_mean_the_node_maximum() {
    let yaml = "kind: batch\ncommand: [/job/run.sh]\nlimits: {memory: 1GiB}\n";
    let m = JobManifest::parse("jobs/x/job.yaml", yaml).unwrap();
    assert_eq!(m.datasets, DatasetSelector::None);
    let max = NodePolicy::default().max_limits;
    let eff = m.limits.effective(&max);
    assert_eq!(eff.memory_bytes, 1 << 30);
    assert_eq!(eff.cpu_seconds, max.cpu_seconds);
    assert_eq!(eff.processes, max.processes);
    let c = with(|c| c.manifests = vec![("x".into(), Ok(m.clone()))]);
    assert!(run(&c).allowed, "{:?}", run(&c));
    // No limits at all is allowed too.
    let bare = JobManifest::parse("f", "kind: batch\ncommand: [python3]\n").unwrap();
    assert_eq!(bare.limits.effective(&max), max);
}

#[test]
fn dataset_selection_skips_unavailable_data() {
    let avail = vec![DATASET.to_string(), SHA256.to_string()];
    assert_eq!(DatasetSelector::All.select(&avail), avail);
    assert!(DatasetSelector::None.select(&avail).is_empty());
    let listed = DatasetSelector::List(vec![SHA256.into(), OTHER_SHA256.into()]);
    assert_eq!(listed.select(&avail), [SHA256]);
    let e = JobManifest::parse(
        "f",
        &export_yaml(RECIPIENT).replace(&format!("[{DATASET}]"), "none"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("nothing to export"), "{e}");
}

#[test]
fn schema_errors_carry_a_location() {
    let e = JobManifest::parse("f", &BATCH_YAML.replace("outputs:", "outptus:")).unwrap_err();
    match e {
        PolicyError::Schema {
            location: Some((line, _)),
            ..
        } => assert_eq!(line, 11),
        other => panic!("expected a located schema error, got {other:?}"),
    }
}

#[test]
fn invalid_lists_every_problem() {
    let yaml = BATCH_YAML
        .replace("cpu_seconds: 600", "cpu_seconds: 0")
        .replace("[stats.json]", "[/abs, a/../b]");
    match JobManifest::parse("f", &yaml).unwrap_err() {
        PolicyError::Invalid { problems, .. } => {
            let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
            assert_eq!(fields, ["limits.cpu_seconds", "outputs[0]", "outputs[1]"]);
            assert!(problems.iter().all(|p| !p.fix.is_empty()));
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn node_policy_embeds_in_a_config() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        listen: String,
        policy: NodePolicy,
    }
    let c: Config = serde_norway::from_str(
        "listen: 127.0.0.1:8080\npolicy:\n  allowed_kinds: [batch]\n  max_limits: {cpu_seconds: 10, memory: 1GiB, wall_seconds: 20, output: 1MiB, processes: 8}\n",
    )
    .unwrap();
    assert_eq!(
        c.listen, "127.0.0.1:8080",
        "the host config's own fields still parse"
    );
    c.policy.validate("node.yaml").unwrap();
    assert_eq!(c.policy.max_limits.memory_bytes, 1 << 30);
    assert_eq!(c.policy.max_jobs, 16);
    assert_eq!(c.policy.digest().len(), 64);
    assert_ne!(c.policy.digest(), NodePolicy::default().digest());
}

// ------------------------------------------------------------ properties

fn arb_limits() -> impl Strategy<Value = JobLimits> {
    let some = |max: u64| proptest::option::of(1..max);
    (
        some(u64::MAX / 2),
        some(u64::MAX / 2),
        some(u64::MAX / 2),
        some(u64::MAX / 2),
        some(100_000u64),
    )
        .prop_map(|(c, m, w, o, p)| JobLimits {
            cpu_seconds: c,
            memory_bytes: m,
            wall_seconds: w,
            output_bytes: o,
            processes: p,
        })
}

fn arb_manifest() -> impl Strategy<Value = JobManifest> {
    let datasets = prop_oneof![
        Just(DatasetSelector::All),
        Just(DatasetSelector::None),
        proptest::collection::btree_set("[0-9a-f]{64}", 0..4)
            .prop_map(|s| DatasetSelector::List(s.into_iter().collect())),
    ];
    let batch = (
        "(/[a-z0-9._-]{1,8}){1,3}|[a-z0-9._-]{1,12}",
        proptest::collection::vec("[ -~é日]{0,12}", 0..4),
        datasets.clone(),
        arb_limits(),
        proptest::collection::btree_set("[a-z]{1,8}(/[a-z0-9.]{1,8}){0,2}", 0..4),
        proptest::option::of("[ -~\n]{0,40}"),
    )
        .prop_map(
            |(program, args, datasets, limits, outputs, description)| JobManifest {
                kind: JobKind::Batch,
                description,
                command: std::iter::once(program).chain(args).collect(),
                datasets,
                limits,
                outputs: outputs
                    .into_iter()
                    .filter_map(|o| collective_policy::OutputPattern::parse(&o).ok())
                    .collect(),
                export: None,
            },
        );
    let export = (datasets, arb_limits(), "age1[a-z0-9]{20,58}").prop_map(
        |(datasets, limits, recipient)| JobManifest {
            kind: JobKind::Export,
            description: None,
            command: vec![],
            datasets: match datasets {
                d if d.is_empty() => DatasetSelector::All,
                d => d,
            },
            limits,
            outputs: vec![],
            export: Some(ExportSpec { recipient }),
        },
    );
    prop_oneof![batch, export]
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_text(s in "\\PC{0,400}") {
        let _ = JobManifest::parse("f", &s);
    }

    #[test]
    fn parser_never_panics_on_mangled_manifests(cut in 0..BATCH_YAML.len(), junk in "[\\[\\]{}:, \n\\-a-z0-9]{0,20}") {
        let mut yaml = BATCH_YAML.to_string();
        let cut = (0..=cut).rev().find(|i| yaml.is_char_boundary(*i)).unwrap();
        yaml.insert_str(cut, &junk);
        let _ = JobManifest::parse("f", &yaml);
    }

    #[test]
    fn node_policies_round_trip_with_the_same_digest(
        kinds in proptest::collection::btree_set(prop_oneof![Just(JobKind::Batch), Just(JobKind::Export)], 1..3),
        limits in arb_limits(),
        max_jobs in 1..1000usize,
    ) {
        let policy = NodePolicy {
            allowed_kinds: kinds,
            max_limits: limits.effective(&NodePolicy::default().max_limits),
            max_jobs,
        };
        let back = NodePolicy::from_yaml("node.yaml", &policy.to_yaml()).unwrap();
        prop_assert_eq!(&back, &policy);
        prop_assert_eq!(back.digest(), policy.digest());
    }

    #[test]
    fn valid_manifests_round_trip(m in arb_manifest()) {
        let yaml = m.to_yaml();
        let back = JobManifest::parse("f", &yaml);
        prop_assert_eq!(back.as_ref(), Ok(&m), "yaml:\n{}", yaml);
    }
}
