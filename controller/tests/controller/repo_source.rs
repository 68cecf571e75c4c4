//! The repository source against real git repositories.

use super::fakes::git;

/// The repository source: local branch head, manifests from the object
/// database, a remote fetched into a mirror, materialization verified.
#[test]
fn repo_source_local_and_remote() {
    use collective_controller::repo::RepoSource;
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    std::fs::create_dir_all(origin.join("jobs/a")).unwrap();
    std::fs::write(
        origin.join("jobs/a/job.yaml"),
        "kind: batch\ncommand: [x]\n",
    )
    .unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    let local = RepoSource::local(&origin, "main");
    assert!(local.head().unwrap().is_none(), "no branch yet");
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "one"]);
    let head = local.head().unwrap().unwrap();
    let m = local.manifests_in_tree(head.tree).unwrap();
    assert_eq!(
        m,
        vec![("a".to_string(), "kind: batch\ncommand: [x]\n".to_string())]
    );
    assert_eq!(RepoSource::local(&origin, "other").head().unwrap(), None);

    let remote = RepoSource::remote(
        &format!("file://{}", origin.display()),
        &tmp.path().join("work"),
        "main",
    );
    assert!(remote.head().unwrap().is_none(), "nothing fetched yet");
    remote.refresh().unwrap();
    assert_eq!(remote.head().unwrap().unwrap().ids, head.ids);
    std::fs::write(origin.join("README"), "two").unwrap();
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "two"]);
    assert_eq!(
        remote.head().unwrap().unwrap().ids,
        head.ids,
        "a remote moves only on fetch"
    );
    remote.refresh().unwrap();
    let head2 = remote.head().unwrap().unwrap();
    assert_ne!(head2.ids, head.ids);

    let dest = tmp.path().join("deployed");
    remote.materialize(head2.tree, &dest).unwrap();
    assert_eq!(
        collective_tree::sha256_tree_of_dir(&dest).unwrap(),
        head2.ids.sha256
    );
}
