//! Integration tests of the controller crate: the real bubblewrap sandbox
//! against hostile jobs (as root and as an ordinary user), and the
//! repository source against real git, and the control loop over test
//! doubles of the chain and the job runner (`loop_faults`). Each test must be able to fail:
//! each asserts the escape attempt was actually made and was contained.

mod controller {
    pub mod fakes;
    pub mod loop_faults;
    pub mod repo_source;
    pub mod sandbox_basic;
    pub mod sandbox_hostile;
    pub mod support;
    pub mod unprivileged;
}
use controller::support;
