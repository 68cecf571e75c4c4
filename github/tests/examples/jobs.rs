//! The example pull requests under `examples/pull-requests/`: every
//! `job.yaml` is parsed with the node's own manifest parser, every command
//! points at a file the PR really adds, and the Python jobs run on the
//! committed sample data (host python3, empty environment, no sandbox) and
//! produce what their READMEs promise.

use std::path::{Path, PathBuf};
use std::process::Command;

use collective_policy::{JobKind, JobManifest};

const PYTHON: &str = "/usr/bin/python3";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn python() -> &'static str {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: the example jobs need Python 3 (apt-get install python3)"
    );
    PYTHON
}

/// The sample CSVs only (the data directory also holds the generator).
fn sample_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(examples().join("data")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv") {
            // Named like the node names decrypted contributions: no extension.
            std::fs::copy(&p, dir.path().join(format!("contribution-{n}"))).unwrap();
            n += 1;
        }
    }
    assert_eq!(n, 3, "three contributors' CSV files in examples/data");
    dir
}

/// Runs a job script like the sandbox does: empty environment, /data and /out passed by argument.
fn run_job(
    script: &Path,
    data: &Path,
    extra: &[&str],
) -> (std::process::Output, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(python())
        .env_clear()
        .arg("-I")
        .arg(script)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out.path())
        .args(extra)
        .output()
        .unwrap();
    (output, out)
}

fn out_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (tree root, path of job.yaml relative to it) for every example manifest.
fn manifests() -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, found);
            } else if p.file_name().is_some_and(|n| n == "job.yaml") {
                found.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&examples().join("pull-requests"), &mut files);
    for f in files {
        // .../<tree root>/jobs/<name>/job.yaml
        let root = f
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        found.push((root, rel));
    }
    found.sort();
    found
}

#[test]
fn every_example_manifest_parses_with_the_node_policy() {
    let all = manifests();
    let names: Vec<&str> = all.iter().map(|(_, rel)| rel.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "jobs/aggregate-stats/job.yaml",
            "jobs/export-to-heavy-node/job.yaml",
            "jobs/train-mlp/job.yaml",
            "jobs/train-model/job.yaml"
        ]
    );
    for (root, rel) in &all {
        let yaml = std::fs::read_to_string(root.join(rel)).unwrap();
        let m = JobManifest::parse(rel, &yaml)
            .unwrap_or_else(|e| panic!("{}: {e}", root.join(rel).display()));
        assert!(
            collective_policy::job_name_from_path(rel).is_some(),
            "{rel}: job name"
        );
        match m.kind {
            JobKind::Batch => {
                // The script the command names is at /job/<path> = <tree root>/<path>.
                let script = m
                    .command
                    .iter()
                    .find(|a| a.starts_with("/job/"))
                    .unwrap_or_else(|| panic!("{rel}: no /job/ path"));
                let on_disk = root.join(script.strip_prefix("/job/").unwrap());
                assert!(
                    on_disk.is_file(),
                    "{rel}: {script} is not in the PR ({})",
                    on_disk.display()
                );
                assert_eq!(
                    m.command[0], PYTHON,
                    "{rel}: empty env, so the interpreter is named by path"
                );
                assert!(!m.outputs.is_empty(), "{rel}: declares its outputs");
            }
            JobKind::Export => {
                assert!(m.export.as_ref().unwrap().recipient.starts_with("age1"));
            }
        }
    }
}

#[test]
fn a_typo_in_an_example_manifest_would_be_refused() {
    let (root, rel) = manifests()
        .into_iter()
        .find(|(_, r)| r.contains("train-model"))
        .unwrap();
    let yaml = std::fs::read_to_string(root.join(&rel))
        .unwrap()
        .replace("memory:", "memroy:");
    assert!(JobManifest::parse(&rel, &yaml).is_err());
}

#[test]
fn train_model_learns_from_the_sample_data() {
    let data = sample_data();
    let script = examples().join("pull-requests/train-model/jobs/train-model/train.py");
    let (output, out) = run_job(&script, data.path(), &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        out_files(out.path()),
        vec!["metrics.json", "model.json"],
        "only weights and metrics"
    );
    let metrics = json(out.path().join("metrics.json"));
    assert_eq!(metrics["files"], 3);
    assert_eq!(
        metrics["rows_train"].as_u64().unwrap() + metrics["rows_test"].as_u64().unwrap(),
        600
    );
    let test = &metrics["test"];
    let acc = test["accuracy"].as_f64().unwrap();
    assert!(
        acc > test["majority_class_accuracy"].as_f64().unwrap(),
        "beats the baseline: {test}"
    );
    assert!(test["auc"].as_f64().unwrap() > 0.75, "{test}");
    let model = json(out.path().join("model.json"));
    let w = &model["weights"];
    assert!(w["glucose"].as_f64().unwrap() > 0.3, "{w}");
    assert!(w["bmi"].as_f64().unwrap() > 0.3, "{w}");
    assert!(w["activity_hours"].as_f64().unwrap() < 0.0, "{w}");
    assert!(model["features"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f != "region" && f != "outcome"));
    // Nothing row-shaped in the outputs: no CSV line of the input appears.
    let text = std::fs::read_to_string(out.path().join("model.json")).unwrap()
        + &std::fs::read_to_string(out.path().join("metrics.json")).unwrap();
    let first_row = std::fs::read_to_string(examples().join("data/clinic-north.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(!text.contains(&first_row));
}

#[test]
fn train_model_refuses_too_little_data() {
    let data = tempfile::tempdir().unwrap();
    let rows: String = std::iter::once("age,bmi,outcome\n".to_string())
        .chain((0..20).map(|i| format!("{},{}.5,{}\n", 30 + i, 20 + i, i % 2)))
        .collect();
    std::fs::write(data.path().join("c"), rows).unwrap();
    let script = examples().join("pull-requests/train-model/jobs/train-model/train.py");
    let (output, out) = run_job(&script, data.path(), &[]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out_files(out.path()).is_empty());
}

#[test]
fn aggregate_stats_suppresses_small_groups() {
    let data = sample_data();
    let script = examples().join("pull-requests/aggregate-stats/jobs/aggregate-stats/stats.py");
    let (output, out) = run_job(&script, data.path(), &["--k", "10"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(out_files(out.path()), vec!["stats.json"]);
    let s = json(out.path().join("stats.json"));
    assert_eq!(s["rows"], 600);
    let cols = s["columns"].as_object().unwrap();
    assert_eq!(cols.len(), 8);
    // Every reported count is >= k or suppressed; no min/max/median anywhere.
    fn check(v: &serde_json::Value, k: u64) {
        match v {
            serde_json::Value::Object(m) => {
                for (key, x) in m {
                    assert!(!["min", "max", "median"].contains(&key.as_str()), "{key}");
                    if ["count", "ones", "zeros"].contains(&key.as_str()) || key.starts_with('(') {
                        assert!(x == "suppressed" || x.as_u64().unwrap() >= k, "{key}: {x}");
                    }
                    check(x, k);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| check(x, k)),
            _ => {}
        }
    }
    check(&s["columns"], 10);
    let regions = cols["region"]["categories"].as_object().unwrap();
    assert!(regions.contains_key("city") && regions.values().all(|n| n.as_u64().unwrap() >= 10));
    assert!(cols["glucose"]["mean"].as_f64().unwrap() > 80.0);
    let bmi = &cols["bmi"];
    assert_eq!(
        bmi["count"].as_u64().unwrap() + bmi["missing"].as_u64().unwrap(),
        600,
        "{bmi}"
    );
}

#[test]
fn aggregate_stats_on_a_tiny_dataset_reveals_no_value() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("c"),
        "age,income,city\n41,98765.43,Smalltown\n37,12345.67,Smalltown\n52,55555.55,Bigcity\n",
    )
    .unwrap();
    let script = examples().join("pull-requests/aggregate-stats/jobs/aggregate-stats/stats.py");
    let (output, out) = run_job(&script, data.path(), &["--k", "10"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out.path().join("stats.json")).unwrap();
    for secret in [
        "98765",
        "12345",
        "55555",
        "Smalltown",
        "Bigcity",
        "41",
        "37",
        "52",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["rows"], "suppressed");
    assert_eq!(s["columns"], "suppressed");
}

#[test]
fn heavy_node_mlp_trains_on_the_exported_copy() {
    let data = sample_data();
    let script =
        examples().join("pull-requests/export-to-heavy-node/heavy-node/jobs/train-mlp/mlp.py");
    let (output, out) = run_job(&script, data.path(), &["--epochs", "10"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(out_files(out.path()), vec!["metrics.json", "model.json"]);
    let metrics = json(out.path().join("metrics.json"));
    assert!(
        metrics["test"]["accuracy"].as_f64().unwrap() > 0.76,
        "{metrics}"
    );
    let model = json(out.path().join("model.json"));
    assert_eq!(model["w1"].as_array().unwrap().len(), 12);
}

#[test]
fn sample_data_is_reproducible_from_its_generator() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(python())
        .env_clear()
        .arg(examples().join("data/generate.py"))
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for name in ["clinic-north.csv", "clinic-south.csv", "clinic-city.csv"] {
        let committed = std::fs::read(examples().join("data").join(name)).unwrap();
        let fresh = std::fs::read(out.path().join(name)).unwrap();
        assert!(
            committed == fresh,
            "{name} differs from what generate.py writes"
        );
    }
}

/// Each example tree, with its real tree ids, passes the node's `decide`
/// under the default node policy when approved with the right recipients;
/// a small node's policy refuses the heavy-node tree for its limits.
#[test]
fn example_trees_are_deployable_under_node_policy() {
    use collective_policy::{decide, ApprovalView, DecisionInput, NodePolicy, TreeFacts, Verdict};
    let mut roots: Vec<PathBuf> = manifests().into_iter().map(|(root, _)| root).collect();
    roots.dedup();
    assert_eq!(roots.len(), 4);
    let small = NodePolicy::from_yaml(
        "small.yaml",
        "allowed_kinds: [batch, export]\nmax_limits: {cpu_seconds: 600, memory: 1GiB, wall_seconds: 1800, output: 1GiB, processes: 64}\nmax_jobs: 4\n",
    )
    .unwrap();
    for root in roots {
        let ids = collective_tree::tree_ids_of_dir(&root).unwrap();
        let jobs: Vec<(String, Result<JobManifest, collective_policy::PolicyError>)> = manifests()
            .into_iter()
            .filter(|(r, _)| *r == root)
            .map(|(r, rel)| {
                let yaml = std::fs::read_to_string(r.join(&rel)).unwrap();
                let name = collective_policy::job_name_from_path(&rel)
                    .unwrap()
                    .to_string();
                (name, JobManifest::parse(&rel, &yaml))
            })
            .collect();
        let mut recipients = vec!["age1requesterplaceholderkey".to_string()];
        for (_, m) in &jobs {
            if let Some(e) = &m.as_ref().unwrap().export {
                recipients.push(e.recipient.clone());
            }
        }
        let approval = ApprovalView {
            tree_sha256: ids.sha256.clone(),
            tree_sha1: ids.sha1.clone(),
            recipients,
            expires_at: 0,
            revoked: false,
            revoke_reason: String::new(),
        };
        let input = |policy| DecisionInput {
            tree: TreeFacts {
                sha1: &ids.sha1,
                sha256_from_disk: Some(&ids.sha256),
            },
            approval: Some(&approval),
            now: 1_800_000_000,
            paused: false,
            manifests: &jobs,
            policy,
        };
        let default_policy = NodePolicy::default();
        let d = decide(&input(&default_policy));
        assert_eq!(
            d.verdict,
            Verdict::Approved,
            "{}: {}",
            root.display(),
            d.summary()
        );
        let d = decide(&input(&small));
        let heavy = root.ends_with("heavy-node");
        assert_eq!(
            d.verdict == Verdict::Refused,
            heavy,
            "{}: {}",
            root.display(),
            d.summary()
        );
    }
}
