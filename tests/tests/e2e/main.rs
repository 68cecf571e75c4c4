//! The end-to-end test binary of collective (one per crate, house style):
//! real anvil with the contracts, real git repositories, real bubblewrap,
//! the `collective` binary. Build the CLI first: `cargo build -p collective`.

mod controller;
mod requester_flow;
mod unprivileged;
mod witness;
