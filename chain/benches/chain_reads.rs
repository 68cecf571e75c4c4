//! Benchmark: reading an approval through `ChainClient` vs `cast call` (the
//! foundry reference tool) against the same anvil, same block, same call.
//! Run: `cargo bench -p collective-chain --bench chain_reads`.
//! Prints per-call latency of each and the ratio (cast / ours).

#![allow(clippy::print_stdout)]

use std::process::Command;
use std::time::Instant;

use collective_chain::devnet::{self, AnvilOptions, AnvilProcess, GovernanceParams};
use collective_chain::*;

const N: usize = 100;

#[tokio::main]
async fn main() {
    let cast = devnet::native_tool("cast");
    assert!(
        cast.exists(),
        "cast not found at {} (run `make tools`)",
        cast.display()
    );
    let anvil = AnvilProcess::spawn(&AnvilOptions::default())
        .await
        .expect("anvil");
    let file = devnet::deploy_demo(anvil.url(), GovernanceParams::default())
        .await
        .expect("deploy");
    let requester = file.client("requester").await.unwrap();
    let voter = file.client("voter1").await.unwrap();
    let tree = B256::repeat_byte(0x5a);
    let req = ApprovalRequest {
        tree_sha256: tree,
        tree_sha1: FixedBytes::repeat_byte(0x5b),
        recipients: vec!["age1example".into()],
        expires_at: 0,
        uri: "bench".into(),
    };
    let id = requester.propose_approval(&req, "bench").await.unwrap();
    requester.fast_forward(id).await.unwrap();
    voter.cast_vote(id, Support::For).await.unwrap();
    requester.fast_forward(id).await.unwrap();
    requester.queue(id).await.unwrap();
    requester.fast_forward(id).await.unwrap();
    requester.execute(id).await.unwrap();
    requester.anvil_mine(3).await.unwrap();
    let reader = ChainClient::connect_deployment(&file.deployment, None)
        .await
        .unwrap();
    let block = reader.block_number().await.unwrap() - 2;

    // Full approval record (eth_call + the Approved log lookup).
    let t = Instant::now();
    for _ in 0..N {
        let a = reader.approval_at_block(tree, block).await.unwrap();
        assert!(a.is_some());
    }
    let ours_full = t.elapsed().as_secs_f64() / N as f64;

    // The bare verdict (one eth_call), the same work `cast call` does.
    let t = Instant::now();
    for _ in 0..N {
        assert!(reader.is_approved(tree, 2).await.unwrap());
    }
    let ours = t.elapsed().as_secs_f64() / N as f64;

    let registry = file.deployment.addresses.code_registry.to_string();
    let t = Instant::now();
    for _ in 0..N {
        let out = Command::new(&cast)
            .args([
                "call",
                "--rpc-url",
                anvil.url(),
                "--block",
                &block.to_string(),
                &registry,
            ])
            .arg("isApproved(bytes32)(bool)")
            .arg(tree.to_string())
            .output()
            .unwrap();
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "true");
    }
    let cast_t = t.elapsed().as_secs_f64() / N as f64;

    println!("chain_reads: {N} reads each, anvil on localhost");
    println!("  ChainClient::is_approved   {:>9.3} ms/call", ours * 1e3);
    println!(
        "  ChainClient::approval_at   {:>9.3} ms/call (record + Approved log lookup)",
        ours_full * 1e3
    );
    println!(
        "  cast call isApproved       {:>9.3} ms/call (process per call)",
        cast_t * 1e3
    );
    println!("  ratio cast/is_approved     {:>9.1}x", cast_t / ours);
    println!("  ratio cast/approval_at     {:>9.1}x", cast_t / ours_full);
}
