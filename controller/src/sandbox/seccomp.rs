//! The job's seccomp filter, compiled with `seccompiler` and handed to
//! bubblewrap (`--add-seccomp-fd`), which installs it last, right before
//! exec, with `no_new_privs` set.
//!
//! In the spirit of Docker's and Flatpak's default profiles, it is a deny
//! list over an otherwise full syscall surface (jobs run ordinary Python,
//! R, or native code; an allow list would break them on every libc
//! update). What it denies, and why:
//! - new namespaces: `unshare`, `setns`, and `clone` with any `CLONE_NEW*`
//!   flag (a nested user namespace gives a job capabilities over a fresh
//!   mount namespace: it could mount its own tmpfs outside every size
//!   limit). `clone3` passes its flags in memory a filter cannot read, so it
//!   answers `ENOSYS` and libc falls back to `clone`, which is checked;
//! - the mount API, old and new: `mount`, `umount2`, `pivot_root`,
//!   `chroot`, `move_mount`, `open_tree`, `fsopen`, `fsconfig`, `fsmount`,
//!   `fspick`, `mount_setattr`;
//! - reading or steering other processes: `ptrace`, `process_vm_readv`,
//!   `process_vm_writev`, `kcmp`, `pidfd_getfd`;
//! - kernel attack surface a job has no use for: `keyctl`, `add_key`,
//!   `request_key`, `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_*`,
//!   `kexec_*`, module loading, `open_by_handle_at`, `name_to_handle_at`,
//!   `swapon/off`, `reboot`, `acct`, clock setting, `quotactl`, `iopl`,
//!   `ioperm`, `lookup_dcookie`, `fanotify_init`, `syslog`, `vhangup`;
//! - terminal injection: `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)`;
//! - setuid and setgid bits: `chmod`, `fchmod`, `fchmodat`, `fchmodat2`
//!   with `S_ISUID` or `S_ISGID` (outputs are on a `nosuid` tmpfs the host
//!   never executes from; this is defence in depth).
//!
//! On x86-64 a third program answers `ENOSYS` to every x32-ABI syscall
//! number (bit 30 set): those share the x86-64 audit arch, so a filter
//! keyed by syscall number alone would let `x32 unshare` through. 32-bit
//! (i386) syscalls fail seccompiler's architecture check and kill the
//! process.
//!
//! Not covered: the filter does not restrict ordinary file, socket (the
//! network namespace has only loopback) or memory syscalls; kernel bugs
//! reachable through allowed syscalls are out of its reach (gVisor is the
//! answer to those).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::SandboxError;

/// `clone` flags that create a namespace.
const CLONE_NS_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// `fchmodat2` (Linux 6.6), not yet in every libc crate; the number is the
/// same in the generic and x86-64 tables.
const SYS_FCHMODAT2: i64 = 452;

/// Syscalls denied whatever their arguments.
fn always_denied() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kcmp,
        libc::SYS_pidfd_getfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_quotactl,
        libc::SYS_fanotify_init,
        libc::SYS_syslog,
        libc::SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_lookup_dcookie]);
    v
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(SandboxError::Seccomp)
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conds).map_err(SandboxError::Seccomp)
}

fn bit_set(arg: u8, bit: u64) -> Result<SeccompRule, SandboxError> {
    rule(vec![cond(arg, SeccompCmpOp::MaskedEq(bit), bit)?])
}

fn target_arch() -> Result<TargetArch, SandboxError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(SandboxError::Seccomp)
}

/// The deny-list program (`EPERM`).
pub fn deny_program() -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in always_denied() {
        rules.insert(nr, vec![]);
    }
    rules.insert(
        libc::SYS_clone,
        CLONE_NS_FLAGS
            .iter()
            .map(|&f| bit_set(0, f))
            .collect::<Result<_, _>>()?,
    );
    let ioctl_cmd = |cmd: u64| {
        SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, cmd)
            .map_err(SandboxError::Seccomp)
            .and_then(|c| rule(vec![c]))
    };
    // Sockets only of the families a job may need: AF_VSOCK (and Hyper-V
    // sockets) ignore network namespaces and reach the host; AF_ALG, AF_KEY,
    // AF_PACKET and the rest are kernel surface. Everything else is EPERM.
    let family_ne = |f: i32| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, f as u64)
            .map_err(SandboxError::Seccomp)
    };
    rules.insert(
        libc::SYS_socket,
        vec![rule(vec![
            family_ne(libc::AF_UNIX)?,
            family_ne(libc::AF_INET)?,
            family_ne(libc::AF_INET6)?,
            family_ne(libc::AF_NETLINK)?,
        ])?],
    );
    rules.insert(
        libc::SYS_ioctl,
        vec![ioctl_cmd(libc::TIOCSTI)?, ioctl_cmd(libc::TIOCLINUX)?],
    );
    let mode_rules = |arg: u8| -> Result<Vec<SeccompRule>, SandboxError> {
        [libc::S_ISUID as u64, libc::S_ISGID as u64]
            .iter()
            .map(|&b| bit_set(arg, b))
            .collect()
    };
    #[cfg(target_arch = "x86_64")]
    rules.insert(libc::SYS_chmod, mode_rules(1)?);
    rules.insert(libc::SYS_fchmod, mode_rules(1)?);
    rules.insert(libc::SYS_fchmodat, mode_rules(2)?);
    rules.insert(SYS_FCHMODAT2, mode_rules(2)?);
    compile(rules, libc::EPERM)
}

/// A program that allows everything but `rules`, which fail with `errno`.
fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, SandboxError> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        target_arch()?,
    )
    .map_err(SandboxError::Seccomp)?;
    filter.try_into().map_err(SandboxError::Seccomp)
}

/// `clone3` answers `ENOSYS` so libc falls back to the checked `clone`.
pub fn clone3_program() -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.insert(libc::SYS_clone3, vec![]);
    compile(rules, libc::ENOSYS)
}

/// x86-64 only: `ENOSYS` for every x32 syscall number. Seven classic BPF
/// instructions (load arch, kill if foreign; load nr, deny if bit 30).
#[cfg(target_arch = "x86_64")]
pub fn x32_program() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const X32_BIT: u32 = 0x4000_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let i = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        i(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        i(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        i(RET_K, 0, 0, RET_KILL_PROCESS),
        i(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        i(JGE_K, 0, 1, X32_BIT),
        i(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
        i(RET_K, 0, 0, RET_ALLOW),
    ]
}

/// Every program the sandbox installs, in order.
pub fn programs() -> Result<Vec<BpfProgram>, SandboxError> {
    #[allow(unused_mut)]
    let mut v = vec![deny_program()?, clone3_program()?];
    #[cfg(target_arch = "x86_64")]
    v.push(x32_program());
    Ok(v)
}

/// The raw `struct sock_filter[]` bytes bubblewrap reads from its fd.
pub fn to_bytes(p: &BpfProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len() * 8);
    for f in p {
        out.extend_from_slice(&f.code.to_ne_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_ne_bytes());
    }
    out
}

/// An in-memory file holding one program, positioned at 0, for
/// `--add-seccomp-fd`.
pub fn program_fd(p: &BpfProgram) -> Result<OwnedFd, SandboxError> {
    super::fds::memfd(c"collective-seccomp", &to_bytes(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_compile_and_serialize() {
        let ps = programs().unwrap();
        assert!(ps.len() >= 2);
        for p in &ps {
            assert!(!p.is_empty());
            assert_eq!(to_bytes(p).len(), p.len() * 8);
        }
        // The deny list names every syscall it promises.
        let denied = always_denied();
        for nr in [
            libc::SYS_unshare,
            libc::SYS_ptrace,
            libc::SYS_bpf,
            libc::SYS_mount,
        ] {
            assert!(denied.contains(&nr));
        }
    }

    #[test]
    fn program_fd_holds_the_bytes() {
        use std::io::Read;
        let p = clone3_program().unwrap();
        let fd = program_fd(&p).unwrap();
        let mut buf = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut buf).unwrap();
        assert_eq!(buf, to_bytes(&p));
    }
}
