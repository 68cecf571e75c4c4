//! One module per top-level command. Each exposes its clap arguments and an
//! async `run(args, out) -> anyhow::Result<u8>` returning the exit code.

pub mod audit;
pub mod config;
pub mod contribute;
pub mod dev;
pub mod github;
pub mod keys;
pub mod log;
pub mod log_source;
pub mod node;
pub mod proposal;
pub mod tree_id;

use collective_chain::{Address, B256};

use crate::Exit;

/// A contract or account address from a flag. A bad one is a usage error
/// (exit 64) naming the flag and the expected form, the same in every
/// command.
pub(crate) fn parse_address(flag: &str, s: &str) -> anyhow::Result<Address> {
    s.trim().parse().map_err(|_| {
        Exit::usage(format!(
            "{flag} {s:?}: expected an address, 0x and 40 hex digits"
        ))
    })
}

/// A 32-byte id (a node id) from a flag; a bad one is a usage error.
pub(crate) fn parse_b256(flag: &str, s: &str) -> anyhow::Result<B256> {
    s.trim()
        .parse()
        .map_err(|_| Exit::usage(format!("{flag} {s:?}: expected 32 bytes, 64 hex digits")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_message(e: anyhow::Error) -> String {
        let exit = e.downcast::<Exit>().expect("an Exit");
        assert_eq!(exit.code, crate::exit::USAGE);
        exit.message
    }

    #[test]
    fn flag_parsers_accept_hex_and_name_the_flag_on_refusal() {
        let a = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
        assert_eq!(format!("{:#x}", parse_address("--x", a).unwrap()), a);
        let m = usage_message(parse_address("--data-registry", "0x12").unwrap_err());
        assert!(
            m.starts_with("--data-registry \"0x12\"") && m.contains("40 hex"),
            "{m}"
        );
        let id = "42".repeat(32);
        assert_eq!(
            parse_b256("--node-id", &id).unwrap(),
            B256::repeat_byte(0x42)
        );
        let m = usage_message(parse_b256("--node-id", &"42".repeat(31)).unwrap_err());
        assert!(m.starts_with("--node-id") && m.contains("64 hex"), "{m}");
    }
}
