//! Local devnets: spawn anvil, deploy the whole suite, hand out voting power
//! to well-known demo accounts, and move time forward so a proposal passes in
//! seconds. Nothing here is meant for a real chain: the keys are anvil's
//! public test keys.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use crate::bindings::{
    CodeRegistry, CollectiveGovernor, CollectiveToken, DataRegistry, NodeRegistry,
    TimelockController,
};
use crate::client::{build_provider, describe, wait_receipt, ChainClient};
use crate::error::{ChainError, Result};
use crate::types::{Addresses, Deployment, ProposalState};

/// anvil's default chain id.
pub const DEFAULT_CHAIN_ID: u64 = 31337;

/// The directory holding anvil/forge/cast: `$COLLECTIVE_TOOLS_BIN`, else
/// `tools/node_modules/.bin` in this workspace (installed by `make tools`).
pub fn tools_bin() -> PathBuf {
    match std::env::var_os("COLLECTIVE_TOOLS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("tools")
            .join("node_modules")
            .join(".bin"),
    }
}

/// The anvil binary used for devnets and tests.
///
/// npm installs `.bin/anvil` as a node launcher that spawns the native binary;
/// killing the launcher would orphan anvil, so the native binary from the
/// platform package next to it is preferred when present.
pub fn anvil_path() -> PathBuf {
    native_tool("anvil")
}

/// The native binary of a foundry tool installed by npm, else `.bin/<tool>`.
pub fn native_tool(tool: &str) -> PathBuf {
    let bin = tools_bin();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let native = bin
        .join("..")
        .join("@foundry-rs")
        .join(format!("{tool}-{}-{arch}", std::env::consts::OS))
        .join("bin")
        .join(tool);
    if native.exists() {
        native
    } else {
        bin.join(tool)
    }
}

/// anvil's first ten accounts (mnemonic `test test ... junk`), public test keys.
const ANVIL_KEYS: [&str; 10] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// Role names of the demo accounts, in anvil account order.
pub const ROLES: [&str; 10] = [
    "deployer",
    "voter1",
    "voter2",
    "voter3",
    "guardian",
    "operator",
    "contributor",
    "requester",
    "spare1",
    "spare2",
];

/// A named dev key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevAccount {
    /// Role (`deployer`, `voter1`, ...).
    pub name: String,
    /// Its address.
    pub address: Address,
    /// Hex private key (public anvil test key).
    pub private_key: String,
}

impl DevAccount {
    /// The signer for this key.
    pub fn signer(&self) -> Result<PrivateKeySigner> {
        self.private_key
            .parse()
            .map_err(|e| ChainError::InvalidInput {
                field: "private key",
                value: self.name.clone(),
                reason: format!("{e}"),
            })
    }
}

/// The demo accounts, one per role.
pub fn dev_accounts() -> Vec<DevAccount> {
    ROLES
        .iter()
        .zip(ANVIL_KEYS.iter())
        .map(|(name, key)| {
            let signer: PrivateKeySigner = key.parse().expect("static anvil keys are valid");
            DevAccount {
                name: name.to_string(),
                address: signer.address(),
                private_key: key.to_string(),
            }
        })
        .collect()
}

/// Governor and timelock timing. Devnet defaults: a proposal passes within
/// a dozen blocks and a two-second timelock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceParams {
    /// Blocks between proposing and voting.
    pub voting_delay: u64,
    /// Blocks voting stays open.
    pub voting_period: u64,
    /// Votes needed to propose (token base units).
    pub proposal_threshold: U256,
    /// Quorum as a percentage of total supply.
    pub quorum_percent: u64,
    /// Timelock delay in seconds.
    pub timelock_delay: u64,
}

impl Default for GovernanceParams {
    fn default() -> Self {
        Self {
            voting_delay: 1,
            voting_period: 10,
            proposal_threshold: U256::ZERO,
            quorum_percent: 4,
            timelock_delay: 2,
        }
    }
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct SuiteParams {
    /// Governor/timelock timing.
    pub governance: GovernanceParams,
    /// CodeRegistry guardian (may revoke and pause only).
    pub guardian: Address,
    /// Token name.
    pub token_name: String,
    /// Token symbol.
    pub token_symbol: String,
    /// Total supply, minted to the deployer.
    pub supply: U256,
}

impl SuiteParams {
    /// Devnet defaults with the given guardian: 1,000,000 CLV (18 decimals).
    pub fn devnet(guardian: Address) -> Self {
        Self {
            governance: GovernanceParams::default(),
            guardian,
            token_name: "Collective".into(),
            token_symbol: "CLV".into(),
            supply: U256::from(1_000_000u64) * U256::from(10u64).pow(U256::from(18u64)),
        }
    }
}

fn deploy_err(url: &str, contract: &'static str, e: &alloy::contract::Error) -> ChainError {
    ChainError::Contract {
        url: url.to_string(),
        contract,
        address: Address::ZERO,
        call: "deploy",
        reason: describe(e),
    }
}

/// Deploys token, timelock, governor and the three registries; wires the
/// timelock so only the governor proposes (anyone executes) and the deployer
/// keeps no admin role. The whole supply is minted to the deployer.
#[tracing::instrument(skip(deployer, params))]
pub async fn deploy_suite(
    rpc_url: &str,
    deployer: PrivateKeySigner,
    params: &SuiteParams,
) -> Result<Deployment> {
    let me = deployer.address();
    let p = build_provider(rpc_url, Some(deployer)).await?;
    let chain_id = p.get_chain_id().await.map_err(|source| ChainError::Rpc {
        url: rpc_url.into(),
        call: "eth_chainId",
        source,
    })?;
    let head = p
        .get_block_number()
        .await
        .map_err(|source| ChainError::Rpc {
            url: rpc_url.into(),
            call: "eth_blockNumber",
            source,
        })?;
    let g = &params.governance;

    let token = CollectiveToken::deploy(
        &p,
        params.token_name.clone(),
        params.token_symbol.clone(),
        me,
        params.supply,
    )
    .await
    .map_err(|e| deploy_err(rpc_url, "CollectiveToken", &e))?;
    let timelock = TimelockController::deploy(
        &p,
        U256::from(g.timelock_delay),
        vec![],
        vec![Address::ZERO],
        me,
    )
    .await
    .map_err(|e| deploy_err(rpc_url, "TimelockController", &e))?;
    let voting_delay = alloy::primitives::aliases::U48::from(g.voting_delay);
    let governor = CollectiveGovernor::deploy(
        &p,
        *token.address(),
        *timelock.address(),
        voting_delay,
        u32::try_from(g.voting_period).map_err(|_| ChainError::InvalidInput {
            field: "voting period",
            value: g.voting_period.to_string(),
            reason: "must fit in 32 bits".into(),
        })?,
        g.proposal_threshold,
        U256::from(g.quorum_percent),
    )
    .await
    .map_err(|e| deploy_err(rpc_url, "CollectiveGovernor", &e))?;
    let node_registry = NodeRegistry::deploy(&p, *timelock.address())
        .await
        .map_err(|e| deploy_err(rpc_url, "NodeRegistry", &e))?;
    let code_registry = CodeRegistry::deploy(&p, *timelock.address(), params.guardian)
        .await
        .map_err(|e| deploy_err(rpc_url, "CodeRegistry", &e))?;
    let data_registry = DataRegistry::deploy(&p, *node_registry.address())
        .await
        .map_err(|e| deploy_err(rpc_url, "DataRegistry", &e))?;

    let addresses = Addresses {
        token: *token.address(),
        timelock: *timelock.address(),
        governor: *governor.address(),
        code_registry: *code_registry.address(),
        node_registry: *node_registry.address(),
        data_registry: *data_registry.address(),
    };
    let client = ChainClient::connect(rpc_url, addresses, None)
        .await?
        .with_from_block(head + 1);
    let tl_err = |call: &'static str, e: &alloy::contract::Error| {
        client.contract_err("TimelockController", addresses.timelock, call, e)
    };
    let proposer = timelock
        .PROPOSER_ROLE()
        .call()
        .await
        .map_err(|e| tl_err("PROPOSER_ROLE", &e))?;
    let canceller = timelock
        .CANCELLER_ROLE()
        .call()
        .await
        .map_err(|e| tl_err("CANCELLER_ROLE", &e))?;
    let admin = timelock
        .DEFAULT_ADMIN_ROLE()
        .call()
        .await
        .map_err(|e| tl_err("DEFAULT_ADMIN_ROLE", &e))?;
    for (call, sent) in [
        (
            "grantRole",
            timelock
                .grantRole(proposer, addresses.governor)
                .send()
                .await,
        ),
        (
            "grantRole",
            timelock
                .grantRole(canceller, addresses.governor)
                .send()
                .await,
        ),
        (
            "renounceRole",
            timelock.renounceRole(admin, me).send().await,
        ),
    ] {
        let sent = sent.map_err(|e| tl_err(call, &e))?;
        let r = wait_receipt(&p, rpc_url, *sent.tx_hash())
            .await
            .map_err(|reason| ChainError::Contract {
                url: rpc_url.into(),
                contract: "TimelockController",
                address: addresses.timelock,
                call,
                reason,
            })?;
        if !r.status() {
            return Err(ChainError::Reverted {
                url: rpc_url.into(),
                contract: "TimelockController",
                call,
                tx_hash: r.transaction_hash,
            });
        }
    }
    tracing::info!(?addresses, chain_id, "suite deployed");
    Ok(Deployment {
        chain_id,
        rpc_url: rpc_url.into(),
        addresses,
        deploy_block: head + 1,
    })
}

/// Transfers voting tokens from `holder` to each account, has each delegate
/// to itself (ERC20Votes counts only delegated tokens), and mines one block
/// so the voting power is in the past for the next proposal's snapshot.
/// Accounts without ether get 100 ETH from `holder` first.
pub async fn fund_and_delegate(
    deployment: &Deployment,
    holder: &PrivateKeySigner,
    grants: &[(PrivateKeySigner, U256)],
) -> Result<()> {
    let url = &deployment.rpc_url;
    let token_addr = deployment.addresses.token;
    let hp = build_provider(url, Some(holder.clone())).await?;
    let token = CollectiveToken::new(token_addr, &hp);
    let tok_err = |call: &'static str, e: String| ChainError::Contract {
        url: url.clone(),
        contract: "CollectiveToken",
        address: token_addr,
        call,
        reason: e,
    };
    for (who, amount) in grants {
        let addr = who.address();
        let bal = hp
            .get_balance(addr)
            .await
            .map_err(|source| ChainError::Rpc {
                url: url.clone(),
                call: "eth_getBalance",
                source,
            })?;
        if bal.is_zero() {
            let tx = alloy::rpc::types::TransactionRequest::default()
                .to(addr)
                .value(U256::from(100u64) * U256::from(10u64).pow(U256::from(18u64)));
            let sent = hp
                .send_transaction(tx)
                .await
                .map_err(|source| ChainError::Rpc {
                    url: url.clone(),
                    call: "eth_sendTransaction",
                    source,
                })?;
            wait_receipt(&hp, url, *sent.tx_hash()).await.map_err(|e| {
                ChainError::Inconsistent {
                    url: url.clone(),
                    what: format!("funding {addr}: {e}"),
                }
            })?;
        }
        if addr != holder.address() && !amount.is_zero() {
            let sent = token
                .transfer(addr, *amount)
                .send()
                .await
                .map_err(|e| tok_err("transfer", describe(&e)))?;
            wait_receipt(&hp, url, *sent.tx_hash())
                .await
                .map_err(|e| tok_err("transfer", e))?;
        }
        let wp = build_provider(url, Some(who.clone())).await?;
        let sent = CollectiveToken::new(token_addr, &wp)
            .delegate(addr)
            .send()
            .await
            .map_err(|e| tok_err("delegate", describe(&e)))?;
        wait_receipt(&wp, url, *sent.tx_hash())
            .await
            .map_err(|e| tok_err("delegate", e))?;
    }
    let client = ChainClient::connect(url, deployment.addresses, None).await?;
    client.anvil_mine(1).await
}

/// The demo distribution: deployer keeps 20%, voters get 40/25/15%.
pub fn demo_grants(supply: U256) -> Vec<(&'static str, U256)> {
    let pct = |p: u64| supply * U256::from(p) / U256::from(100u64);
    vec![
        ("deployer", pct(20)),
        ("voter1", pct(40)),
        ("voter2", pct(25)),
        ("voter3", pct(15)),
    ]
}

/// A running anvil. Killed on drop unless [`detach`](Self::detach)ed.
#[derive(Debug)]
pub struct AnvilProcess {
    child: Option<Child>,
    pid: u32,
    port: u16,
    url: String,
    log: Option<PathBuf>,
}

/// How to start anvil.
#[derive(Debug, Clone, Default)]
pub struct AnvilOptions {
    /// Port; `None` picks a free one.
    pub port: Option<u16>,
    /// Chain id; `None` = anvil's default (31337).
    pub chain_id: Option<u64>,
    /// Write anvil's output here (else discarded after startup).
    pub log: Option<PathBuf>,
    /// Put anvil in its own process group so it outlives the caller's
    /// terminal signals (for `collective dev up`).
    pub detached: bool,
}

/// A port nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| ChainError::Anvil {
        path: anvil_path(),
        reason: format!("cannot find a free port: {e}"),
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| ChainError::Anvil {
            path: anvil_path(),
            reason: e.to_string(),
        })
}

impl AnvilProcess {
    /// Starts anvil and waits until it answers JSON-RPC.
    pub async fn spawn(opts: &AnvilOptions) -> Result<Self> {
        let path = anvil_path();
        if !path.exists() {
            return Err(ChainError::Anvil {
                path,
                reason: "not found; run `make tools` (or set COLLECTIVE_TOOLS_BIN)".into(),
            });
        }
        let port = match opts.port {
            Some(p) => p,
            None => free_port()?,
        };
        let mut cmd = Command::new(&path);
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--host")
            .arg("127.0.0.1");
        if let Some(id) = opts.chain_id {
            cmd.arg("--chain-id").arg(id.to_string());
        }
        cmd.stdin(Stdio::null());
        match &opts.log {
            Some(log) => {
                let f = std::fs::File::create(log).map_err(|e| ChainError::Anvil {
                    path: path.clone(),
                    reason: format!("cannot create log {}: {e}", log.display()),
                })?;
                let f2 = f.try_clone().map_err(|e| ChainError::Anvil {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                cmd.stdout(f).stderr(f2);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            }
        }
        if opts.detached {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|e| ChainError::Anvil {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut me = Self {
            pid: child.id(),
            child: Some(child),
            port,
            url: format!("http://127.0.0.1:{port}"),
            log: opts.log.clone(),
        };
        me.wait_ready(&path).await?;
        Ok(me)
    }

    async fn wait_ready(&mut self, path: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut msg = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut msg);
                    }
                    if let Some(log) = &self.log {
                        msg = std::fs::read_to_string(log).unwrap_or_default();
                    }
                    let tail: String = msg
                        .lines()
                        .rev()
                        .take(5)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join(" | ");
                    self.child = None;
                    return Err(ChainError::Anvil {
                        path: path.to_path_buf(),
                        reason: format!("exited with {status} on port {}: {tail}", self.port),
                    });
                }
            }
            if build_provider(&self.url, None).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ChainError::Anvil {
                    path: path.to_path_buf(),
                    reason: format!("no JSON-RPC answer on {} after 20s", self.url),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Leaves anvil running after this handle is dropped; returns its pid.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }
}

impl Drop for AnvilProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Stops a detached anvil by pid, after checking the pid still is anvil
/// (a recycled pid must not be killed). Returns false if it was not running.
pub fn stop_anvil(pid: u32) -> Result<bool> {
    if !anvil_running(pid) {
        return Ok(false);
    }
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .map_err(|e| ChainError::Anvil {
            path: anvil_path(),
            reason: format!("cannot run kill: {e}"),
        })?;
    if !status.success() {
        return Ok(false);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while anvil_running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}

/// True if `pid` is a live (not zombie) process named anvil.
pub fn anvil_running(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "anvil" {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Field 3 is the state; a zombie (Z) has exited and waits to be reaped.
    let state = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some(Some('Z')) | Some(Some('X')) | None)
}

/// Information about a detached anvil recorded in devnet.yaml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnvilInfo {
    /// Its pid (for `collective dev down`).
    pub pid: u32,
    /// Its port.
    pub port: u16,
    /// Its log file.
    pub log: Option<PathBuf>,
}

/// The devnet.yaml written by `collective dev up`: a [`Deployment`] (fields
/// at the top level, so it also parses as one), governance timing, the anvil
/// it started, and the demo keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevnetFile {
    /// The deployment.
    #[serde(flatten)]
    pub deployment: Deployment,
    /// Governor/timelock timing.
    #[serde(default)]
    pub governance: GovernanceParams,
    /// The anvil started by `dev up`, if any (absent with `--rpc`).
    #[serde(default)]
    pub anvil: Option<AnvilInfo>,
    /// Demo keys by role.
    #[serde(default)]
    pub accounts: Vec<DevAccount>,
}

impl DevnetFile {
    /// Reads a devnet file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ChainError::DevnetFile {
            path: path.into(),
            reason: e.to_string(),
        })?;
        serde_norway::from_str(&text).map_err(|e| ChainError::DevnetFile {
            path: path.into(),
            reason: e.to_string(),
        })
    }

    /// Writes it (mode 0600: it holds keys, even if only test keys).
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_norway::to_string(self).map_err(|e| ChainError::DevnetFile {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("yaml.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| ChainError::DevnetFile {
                path: tmp.clone(),
                reason: e.to_string(),
            })?;
        f.write_all(
            format!(
                "# collective devnet (anvil test keys only; never use on a real chain)\n{text}"
            )
            .as_bytes(),
        )
        .and_then(|_| f.sync_all())
        .map_err(|e| ChainError::DevnetFile {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        std::fs::rename(&tmp, path).map_err(|e| ChainError::DevnetFile {
            path: path.into(),
            reason: e.to_string(),
        })
    }

    /// A client of this deployment signing as the demo `role` (`voter1`,
    /// `guardian`, ...), so tests, benches and tools do not each rebuild it
    /// from the role's key.
    pub async fn client(&self, role: &str) -> Result<ChainClient> {
        let signer = self.account(role)?.signer()?;
        ChainClient::connect_deployment(&self.deployment, Some(signer)).await
    }

    /// The key of a role.
    pub fn account(&self, name: &str) -> Result<&DevAccount> {
        self.accounts
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| ChainError::InvalidInput {
                field: "dev account",
                value: name.into(),
                reason: format!(
                    "not in the devnet file (known: {})",
                    self.accounts
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// Deploys the suite on `rpc_url` with the demo accounts and distribution.
pub async fn deploy_demo(rpc_url: &str, governance: GovernanceParams) -> Result<DevnetFile> {
    let accounts = dev_accounts();
    let find = |n: &str| accounts.iter().find(|a| a.name == n).expect("role exists");
    let deployer = find("deployer").signer()?;
    let mut params = SuiteParams::devnet(find("guardian").address);
    params.governance = governance.clone();
    let deployment = deploy_suite(rpc_url, deployer.clone(), &params).await?;
    let mut grants = Vec::new();
    for (name, amount) in demo_grants(params.supply) {
        grants.push((find(name).signer()?, amount));
    }
    fund_and_delegate(&deployment, &deployer, &grants).await?;
    Ok(DevnetFile {
        deployment,
        governance,
        anvil: None,
        accounts,
    })
}

impl ChainClient {
    /// anvil: mine `blocks` empty blocks.
    pub async fn anvil_mine(&self, blocks: u64) -> Result<()> {
        self.provider()
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (U256::from(blocks),))
            .await
            .map_err(|e| self.rpc("anvil_mine", e))?;
        Ok(())
    }

    /// anvil: move the clock forward `seconds` and mine a block.
    pub async fn anvil_increase_time(&self, seconds: u64) -> Result<()> {
        self.provider()
            .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (U256::from(seconds),))
            .await
            .map_err(|e| self.rpc("evm_increaseTime", e))?;
        self.anvil_mine(1).await
    }

    /// anvil: snapshot the chain (for tests that simulate a reorg).
    pub async fn anvil_snapshot(&self) -> Result<U256> {
        self.provider()
            .raw_request("evm_snapshot".into(), ())
            .await
            .map_err(|e| self.rpc("evm_snapshot", e))
    }

    /// anvil: revert to a snapshot, dropping the blocks mined since.
    pub async fn anvil_revert(&self, id: U256) -> Result<bool> {
        self.provider()
            .raw_request("evm_revert".into(), (id,))
            .await
            .map_err(|e| self.rpc("evm_revert", e))
    }

    /// anvil: advance blocks/time so the proposal can take its next step:
    /// Pending -> Active, Active -> voting closed, Queued -> timelock ready.
    /// Returns the state afterwards. Other states are left as they are.
    pub async fn fast_forward(&self, id: alloy::primitives::U256) -> Result<ProposalState> {
        let info = self.proposal(id).await?;
        let head = self.block_number().await?;
        match info.state {
            ProposalState::Pending if info.snapshot >= head => {
                self.anvil_mine(info.snapshot - head + 1).await?
            }
            ProposalState::Active if info.deadline >= head => {
                self.anvil_mine(info.deadline - head + 1).await?
            }
            ProposalState::Queued => {
                let (_, now) = self.block_hash(head).await?.unwrap_or_default();
                if info.eta > now {
                    self.anvil_increase_time(info.eta - now).await?;
                }
            }
            _ => {}
        }
        self.proposal_state(id).await
    }
}
