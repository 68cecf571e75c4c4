//! Integration tests of the controller crate: the real bubblewrap sandbox
//! against hostile jobs (as root and as an ordinary user), and the
//! repository source against real git. Each test must be able to fail:
//! each asserts the escape attempt was actually made and was contained.

mod controller {
    pub mod repo_source;
    pub mod sandbox_basic;
    pub mod sandbox_hostile;
    pub mod support;
    pub mod unprivileged;
}
use controller::support;
