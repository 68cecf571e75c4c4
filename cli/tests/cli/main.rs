//! The CLI's integration tests, one test binary (`cargo test -p collective
//! --test cli`): linking the workspace once instead of once per file keeps
//! builds fast on small machines. Each module drives the built `collective`
//! binary the way a user would; `support` holds what they share.

mod support;

mod audit_tamper;
mod chain_cli;
mod hostile_server;
mod keys_contribute_cli;
mod proposal_pr_cli;
mod tree_id_cli;
