//! Waiting for SIGINT/SIGTERM: the signals are blocked in every thread (workers inherit the
//! mask) and the main thread collects them with `sigwait`.

pub struct Signals(libc::sigset_t);

/// Blocks SIGINT and SIGTERM in the calling thread and the threads it starts later.
pub fn block_termination() -> Signals {
    // SAFETY: plain libc signal-set manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        Signals(set)
    }
}

/// Waits until one of the blocked signals arrives.
pub fn wait(s: &Signals) {
    let mut sig: libc::c_int = 0;
    // SAFETY: sigwait only reads the set and writes the signal number.
    unsafe {
        libc::sigwait(&s.0, &mut sig);
    }
}
