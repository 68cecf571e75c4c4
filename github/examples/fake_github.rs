//! A local fake of the GitHub REST API for demos: serves one repository's
//! open pull requests and records the statuses and comments posted to it
//! (readable back through the same API, e.g. with curl).
//!
//! ```sh
//! GITHUB_TOKEN=demo cargo run -p collective-github --features fake --example fake_github -- \
//!     --owner acme --repo jobs --clone-url file:///tmp/remote.git \
//!     --pull 1:<head sha>:<base sha>:"Train a model" [--addr-file /tmp/fake-github.url]
//! ```
//! Prints the API URL on stdout (and into `--addr-file`), then serves until killed.

use collective_github::fake::{FakeGithub, FakePull};

fn usage() -> ! {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("usage: fake_github --owner O --repo R --clone-url URL [--bot LOGIN] [--pull N:HEAD:BASE:TITLE[:BODY]]... [--addr-file FILE]");
    }
    std::process::exit(64)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut owner, mut repo, mut clone_url, mut bot, mut addr_file) =
        (None, None, None, "collective-node".to_string(), None);
    let mut pulls = Vec::new();
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--owner" => owner = Some(val()),
            "--repo" => repo = Some(val()),
            "--clone-url" => clone_url = Some(val()),
            "--bot" => bot = val(),
            "--addr-file" => addr_file = Some(val()),
            "--pull" => {
                let v = val();
                let parts: Vec<&str> = v.splitn(5, ':').collect();
                let [n, head, base, title, rest @ ..] = parts.as_slice() else {
                    usage()
                };
                pulls.push(FakePull {
                    number: n.parse().unwrap_or_else(|_| usage()),
                    title: title.to_string(),
                    body: rest
                        .first()
                        .map(|b| b.replace("\\n", "\n"))
                        .unwrap_or_default(),
                    head_sha: head.to_string(),
                    head_ref: format!("pr-{n}"),
                    base_ref: "main".into(),
                    base_sha: base.to_string(),
                    author: "requester".into(),
                });
            }
            _ => usage(),
        }
    }
    let (Some(owner), Some(repo), Some(clone_url)) = (owner, repo, clone_url) else {
        usage()
    };
    let token = std::env::var("GITHUB_TOKEN").unwrap_or_else(|_| usage());
    let fake = FakeGithub::start(&owner, &repo, &token, &bot, &clone_url).await;
    for p in pulls {
        fake.open_pull(p);
    }
    let url = fake.api_url();
    if let Some(f) = addr_file {
        std::fs::write(&f, format!("{url}\n")).expect("writing --addr-file");
    }
    #[allow(clippy::print_stdout)]
    {
        println!("{url}");
    }
    std::future::pending::<()>().await;
}
