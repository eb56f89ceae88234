//! Starting a step's process and learning when it exits, cheaply enough
//! for runs of thousands of short steps.
//!
//! `std::process::Command` (and tokio's, which wraps it) copies the whole
//! inherited environment into a sorted map, and from there into new C
//! strings, for every child given a variable of its own, as every step is;
//! tokio opens a pidfd per child to hear of its exit; and both start the
//! child with glibc's `posix_spawn`, whose child makes two `sigaction`
//! calls for each of the 64 signals before it runs the program, while the
//! thread that started it waits. On 1,000 `true` steps these cost more of
//! the orchestrator's time than everything else it does for a step. Here:
//!
//! - the inherited environment is turned into C strings once per process,
//!   and a step's environment is that list with the step's variables put
//!   in place of the inherited ones of the same name;
//! - the process is made with `clone(CLONE_VM)`: it shares this process's
//!   memory, so nothing is copied, until it runs the program. Unlike
//!   `posix_spawn` (`CLONE_VM | CLONE_VFORK`), the thread that starts it
//!   goes on at once instead of waiting for the new process to be
//!   scheduled and run the program: on two busy cores that wait was a
//!   third of a step. The child puts itself in a process group of its
//!   own, goes to its working directory, gives default handling to the
//!   signals this process handles or ignores, takes `/dev/null` as
//!   standard input and two pipes the runtime reads without blocking as
//!   output, unblocks all signals and runs the program. It does so with
//!   raw system calls only: it runs beside this process's threads, on
//!   their memory, so it must not allocate, lock, or set `errno` (which
//!   would be the `errno` of the thread that started it);
//! - its exit is learnt from a pidfd that `clone` itself returns
//!   (`CLONE_PIDFD`), watched by the runtime, so an exit wakes only the
//!   step whose process it was. Where pidfds are missing (Linux before
//!   5.3, or a seccomp profile that refuses them) it is learnt from
//!   SIGCHLD instead: each step waiting for its process listens for the
//!   signal and asks for its own process when one comes. A child that
//!   could not run its program (missing, not executable, its directory
//!   gone) exits with the reason left in memory it shares with us, and
//!   [`Child::start_error`] gives it once the child is reaped.
//!
//! A [`Child`] dropped before its process was reaped kills the process and
//! reaps it (later, if it has not died yet), so no zombie is left. What the
//! child reads until it runs the program is freed only once it is reaped.

use std::ffi::{CString, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};

use syscalls::{Errno, Sysno, syscall};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The signals a child gets default handling of: those this process
/// handles (a handler cannot survive `exec` anyway) and those it may
/// ignore (SIGPIPE, which Rust ignores; SIGINT and SIGQUIT when started in
/// the background), which a child would otherwise inherit ignored.
const DEFAULT_SIGNALS: [libc::c_int; 6] = [
    libc::SIGPIPE,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGCHLD,
];

/// A started step: its process and the read ends of its output pipes.
pub struct Spawned {
    /// The process.
    pub child: Child,
    /// Its standard output.
    pub stdout: pipe::Receiver,
    /// Its standard error.
    pub stderr: pipe::Receiver,
}

/// A child process, reaped by [`Child::try_wait`] once it exits.
pub struct Child {
    pid: libc::pid_t,
    reaped: bool,
    /// How its exit is heard of.
    exits: Exits,
    /// What the process reads until it runs its program; kept until it is
    /// reaped (or handed to the orphans with it).
    launch: Option<Box<Launch>>,
}

/// How a child's exit is heard of.
enum Exits {
    /// Its pidfd, readable once it has exited.
    Pidfd(AsyncFd<OwnedFd>),
    /// SIGCHLD, listened for from before the process started: of any
    /// child, so each one that comes is only a reason to ask.
    Sigchld(Signal),
}

/// Which of the two ways of hearing of exits a spawn uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    Pidfd,
    Sigchld,
}

impl Watch {
    /// Pidfds where the kernel gives them (Linux 5.3 and later, unless a
    /// seccomp profile refuses them), SIGCHLD elsewhere; asked once.
    fn best() -> Watch {
        static BEST: OnceLock<Watch> = OnceLock::new();
        *BEST.get_or_init(|| {
            // SAFETY: pidfd_open has no memory effects, and a descriptor
            // it returns is closed at once.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
            if fd < 0 {
                return Watch::Sigchld;
            }
            // SAFETY: `fd` was just opened here and is used nowhere else.
            unsafe { libc::close(fd as RawFd) };
            Watch::Pidfd
        })
    }
}

/// Starts `program` (a path) with `args`, in `cwd`, with the inherited
/// environment and `env` on top (a later entry wins over an earlier one of
/// the same name, as both win over inherited ones).
///
/// Returns once the process exists, without waiting for it to run the
/// program: a program or directory that is missing shows once the process
/// is reaped, in [`Child::start_error`].
pub fn spawn(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(String, String)],
) -> io::Result<Spawned> {
    spawn_watched(program, args, cwd, env, Watch::best())
}

fn spawn_watched(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(String, String)],
    watch: Watch,
) -> io::Result<Spawned> {
    reap_orphans();
    let program = c_string(program.as_os_str().as_bytes())?;
    let mut argv = Vec::with_capacity(args.len() + 1);
    for arg in args {
        argv.push(c_string(arg.as_bytes())?);
    }
    let cwd = c_string(cwd.as_os_str().as_bytes())?;
    let own = own_environment(env)?;
    let (stdout, stdout_w) = pipe_pair()?;
    let (stderr, stderr_w) = pipe_pair()?;
    let mut argvp: Vec<*const libc::c_char> = Vec::with_capacity(argv.len() + 2);
    argvp.push(program.as_ptr());
    argvp.extend(argv.iter().map(|a| a.as_ptr()));
    argvp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = inherited()
        .iter()
        .filter(|(name, _)| {
            !own.iter()
                .any(|(len, var)| var.as_bytes()[..*len] == *name.as_bytes())
        })
        .map(|(_, var)| var.as_ptr())
        .chain(own.iter().map(|(_, var)| var.as_ptr()))
        .collect();
    envp.push(std::ptr::null());
    let (stdio, _copies) =
        above_stdio([null_input()?, stdout_w.as_raw_fd(), stderr_w.as_raw_fd()])?;
    let launch = Box::new(Launch {
        stack: Stack::take(),
        program,
        argvp,
        envp,
        cwd,
        stdio,
        defaults: defaulted_signals(),
        error: AtomicI32::new(0),
        _strings: (argv, own),
    });
    // Everything that can fail is done before the start, but for watching
    // a pidfd, which exists only after it: a child whose pidfd cannot be
    // watched is killed and left to the orphans, which reap it. SIGCHLD is
    // listened for before the start: the exit cannot come unheard.
    let stdout = pipe::Receiver::from_owned_fd_unchecked(stdout)?;
    let stderr = pipe::Receiver::from_owned_fd_unchecked(stderr)?;
    let sigchld = match watch {
        Watch::Sigchld => Some(signal(SignalKind::child())?),
        Watch::Pidfd => None,
    };
    let (pid, pidfd) = launch.start(watch == Watch::Pidfd)?;
    let exits = match (sigchld, pidfd) {
        (Some(sigchld), _) => Exits::Sigchld(sigchld),
        (None, Some(pidfd)) => {
            // SAFETY: an `OwnedFd` gives the same open descriptor for as
            // long as it lives.
            match unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) } {
                Ok(pidfd) => Exits::Pidfd(pidfd),
                Err(e) => {
                    abandon(pid, Some(launch));
                    return Err(e.into());
                }
            }
        }
        (None, None) => {
            abandon(pid, Some(launch));
            return Err(io::Error::other("the kernel returned no pidfd"));
        }
    };
    Ok(Spawned {
        child: Child {
            pid,
            reaped: false,
            exits,
            launch: Some(launch),
        },
        stdout,
        stderr,
    })
}

impl Child {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// The exit status, if the process has exited (reaping it); `None`
    /// while it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.unreaped()?;
        self.reaped_as(reap(self.pid))
    }

    /// An error once the process has been reaped: its pid may name
    /// another process by then.
    fn unreaped(&self) -> io::Result<()> {
        if self.reaped {
            return Err(io::Error::other("the process was already reaped"));
        }
        Ok(())
    }

    /// Notes what asking for the process's exit gave, and passes it on.
    fn reaped_as(
        &mut self,
        status: io::Result<Option<ExitStatus>>,
    ) -> io::Result<Option<ExitStatus>> {
        match status {
            Ok(Some(status)) => {
                self.reaped = true;
                Ok(Some(status))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                // Not this process's child any more (ECHILD): nothing is
                // left to reap, and its pid must not be signalled again.
                self.reaped = true;
                Err(e)
            }
        }
    }

    /// Why the process could not run its program, once it is reaped:
    /// then its exit status (127) is its own, not the program's.
    pub fn start_error(&self) -> Option<io::Error> {
        if !self.reaped {
            return None;
        }
        match self.launch.as_ref()?.error.load(Ordering::Acquire) {
            0 => None,
            errno => Some(io::Error::from_raw_os_error(errno)),
        }
    }

    /// Waits until the process may have exited (its pidfd is readable, or
    /// a SIGCHLD came, of this child or another) and says whether it did
    /// (reaping it). Cancel-safe.
    pub async fn next_exit(&mut self) -> io::Result<Option<ExitStatus>> {
        self.unreaped()?;
        let pid = self.pid;
        let status = match &mut self.exits {
            Exits::Pidfd(pidfd) => {
                let mut ready = pidfd.readable().await?;
                let status = reap(pid);
                // Readable means exited, so this is a formality; were it
                // not so, the next wait would not come back at once.
                if matches!(status, Ok(None)) {
                    ready.clear_ready();
                }
                status
            }
            Exits::Sigchld(sigchld) => {
                if sigchld.recv().await.is_none() {
                    return Err(io::Error::other("SIGCHLD can no longer be heard"));
                }
                reap(pid)
            }
        };
        reap_orphans();
        self.reaped_as(status)
    }

    /// Waits for the process to exit and reaps it.
    #[cfg(test)]
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if let Some(status) = self.next_exit().await? {
                return Ok(status);
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            abandon(self.pid, self.launch.take());
        }
    }
}

/// Kills `pid`, an unreaped child started with `launch`, and reaps it, or
/// leaves both to the orphans when it has not died yet.
fn abandon(pid: libc::pid_t, launch: Option<Box<Launch>>) {
    // SAFETY: kill has no memory effects; the pid is this process's
    // unreaped child, so it names no other process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    if !matches!(reap(pid), Ok(Some(_))) {
        // It may still be reading its launch: both go together.
        if let Ok(mut orphans) = ORPHANS.lock() {
            orphans.push((pid, launch));
        } else {
            // Never freed rather than freed under a live child.
            std::mem::forget(launch);
        }
    }
}

/// Children dropped before they could be reaped, killed and reaped later,
/// with what they read until they run their program.
static ORPHANS: Mutex<Vec<(libc::pid_t, Option<Box<Launch>>)>> = Mutex::new(Vec::new());

fn reap_orphans() {
    if let Ok(mut orphans) = ORPHANS.lock() {
        orphans.retain(|(pid, _)| matches!(reap(*pid), Ok(None)));
    }
}

/// `waitpid` without blocking: the status if `pid` exited.
fn reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for the status.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match got {
            0 => return Ok(None),
            p if p == pid => return Ok(Some(ExitStatus::from_raw(status))),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The inherited environment, as `NAME=value` C strings beside their
/// names, made once.
fn inherited() -> &'static [(OsString, CString)] {
    static VARS: LazyLock<Vec<(OsString, CString)>> = LazyLock::new(|| {
        std::env::vars_os()
            .filter_map(|(name, value)| {
                let mut var = name.as_bytes().to_vec();
                var.push(b'=');
                var.extend_from_slice(value.as_bytes());
                Some((name, CString::new(var).ok()?))
            })
            .collect()
    });
    &VARS
}

/// The step's own variables as `NAME=value` C strings beside the length
/// of their names, the last of each name only.
fn own_environment(env: &[(String, String)]) -> io::Result<Vec<(usize, CString)>> {
    let mut own: Vec<(usize, CString)> = Vec::with_capacity(env.len());
    for (i, (name, value)) in env.iter().enumerate() {
        if env[i + 1..].iter().any(|(later, _)| later == name) {
            continue;
        }
        if name.is_empty() || name.contains('=') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` cannot be the name of an environment variable"),
            ));
        }
        // Sized for the terminating NUL too: one allocation a variable.
        let mut var = Vec::with_capacity(name.len() + value.len() + 2);
        var.extend_from_slice(name.as_bytes());
        var.push(b'=');
        var.extend_from_slice(value.as_bytes());
        own.push((name.len(), c_string(var)?));
    }
    Ok(own)
}

fn c_string(bytes: impl Into<Vec<u8>>) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` holds a NUL byte, which no program can be given",
                String::from_utf8_lossy(&e.into_vec())
            ),
        )
    })
}

/// A pipe: the read end (non-blocking, for the runtime) and the write end.
/// Both are made non-blocking, in one call; the child makes its copy of
/// the write end, its standard output or error, blocking again (in its own
/// time rather than ours). Both are closed on `exec`.
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors owned by no one else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((read, write))
}

/// `/dev/null`, opened once, for every child's standard input.
fn null_input() -> io::Result<RawFd> {
    static NULL: LazyLock<io::Result<std::fs::File>> =
        LazyLock::new(|| std::fs::File::open("/dev/null"));
    match &*NULL {
        Ok(file) => Ok(file.as_raw_fd()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot open /dev/null: {e}"),
        )),
    }
}

/// The descriptors a child takes as 0, 1 and 2, each moved above 2 if it
/// is not (only when this process runs with one of those closed), so that
/// putting one in place cannot close another before it is used. The
/// copies made are returned to be closed once the child exists: it has
/// its own descriptor table from then on.
fn above_stdio(fds: [RawFd; 3]) -> io::Result<([RawFd; 3], Vec<OwnedFd>)> {
    let mut copies = Vec::new();
    let mut moved = fds;
    for fd in &mut moved {
        if *fd > 2 {
            continue;
        }
        // SAFETY: duplicates a descriptor this process holds.
        let copy = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) };
        if copy == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `copy` was just opened and is owned by no one else.
        copies.push(unsafe { OwnedFd::from_raw_fd(copy) });
        *fd = copy;
    }
    Ok((moved, copies))
}

/// Everything a child reads from `clone` until it runs its program, made
/// before the `clone` and never changed after (but for `error`, which
/// only the child writes). It is freed only once the child is reaped.
struct Launch {
    /// The stack the child runs on until then.
    stack: Stack,
    program: CString,
    /// NULL-terminated pointers into `program` and `_strings`.
    argvp: Vec<*const libc::c_char>,
    /// NULL-terminated pointers into `_strings` and the inherited
    /// environment, which lives as long as the process.
    envp: Vec<*const libc::c_char>,
    cwd: CString,
    /// The child's descriptors 0, 1 and 2, all above 2 here.
    stdio: [RawFd; 3],
    /// The signals it resets to default handling.
    defaults: &'static [libc::c_int],
    /// The `errno` of the call that failed in the child, which then exits
    /// without running the program; 0 while none did.
    error: AtomicI32,
    /// The arguments and the step's own variables `argvp` and `envp`
    /// point into.
    _strings: (Vec<CString>, Vec<(usize, CString)>),
}

// SAFETY: the raw pointers point into the launch's own strings (moved
// with it, as their heap buffers do not move) or into the inherited
// environment, which is never freed; nothing is shared between threads
// but `error`, an atomic.
unsafe impl Send for Launch {}

impl Launch {
    /// Makes the process, which runs [`run_child`] on this launch; with
    /// `pidfd`, also a pidfd of it.
    fn start(&self, pidfd: bool) -> io::Result<(libc::pid_t, Option<OwnedFd>)> {
        let top = (self.stack.0.as_ptr() as usize + self.stack.0.len()) & !15;
        // SAFETY: `all` and `old` are valid signal sets. The child gets the
        // top of a stack of its own, 16-byte aligned, and this launch, which
        // the caller keeps, unchanged, until the child is reaped; it touches
        // nothing else of this process's memory.
        unsafe {
            let mut all = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigfillset(all.as_mut_ptr());
            let mut old = MaybeUninit::<libc::sigset_t>::uninit();
            // No handler of ours may run in the child: it shares our
            // memory. It unblocks signals once it has reset their handling.
            let blocked = libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
            if blocked != 0 {
                return Err(io::Error::from_raw_os_error(blocked));
            }
            let flags = if pidfd {
                libc::CLONE_VM | libc::CLONE_PIDFD | libc::SIGCHLD
            } else {
                libc::CLONE_VM | libc::SIGCHLD
            };
            // With CLONE_PIDFD, the kernel puts the pidfd where the
            // parent's thread id would go.
            let mut fd: libc::c_int = -1;
            let pid = libc::clone(
                run_child,
                top as *mut libc::c_void,
                flags,
                std::ptr::from_ref(self).cast_mut().cast(),
                &raw mut fd,
            );
            let cloned = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut());
            if pid == -1 {
                return Err(cloned);
            }
            // The child makes its own group too; whichever of us comes
            // first, the group exists when this returns, so signalling
            // it reaches the child even before it ran the program. (It
            // fails harmlessly once the child ran it or died.)
            libc::setpgid(pid, pid);
            // The pidfd is this process's own and open (close-on-exec).
            Ok((pid, (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))))
        }
    }
}

/// The child, from `clone` until it runs its program: a process group of
/// its own, its working directory, default handling of `defaults`, its
/// three descriptors (output blocking) and an empty signal mask. It
/// returns (and so exits, with 127) only when a call failed, leaving the
/// reason in the launch.
extern "C" fn run_child(launch: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `launch` is the `Launch` the parent keeps, unchanged, until
    // this process is reaped.
    let launch = unsafe { &*launch.cast::<Launch>() };
    // SAFETY: raw system calls on pointers into the launch, which are
    // valid and NULL-terminated where the calls need it.
    let Err(errno) = unsafe { exec_child(launch) };
    launch.error.store(errno.into_raw(), Ordering::Release);
    127
}

/// The size of a kernel signal set, in bytes.
const SIGSET_SIZE: usize = std::mem::size_of::<u64>();

/// The child's system calls, raw: none of them may touch `errno`.
///
/// # Safety
///
/// Only in a child made by [`Launch::start`], with that launch.
unsafe fn exec_child(launch: &Launch) -> Result<std::convert::Infallible, Errno> {
    // A kernel `struct sigaction` (at most 32 bytes wherever the signal
    // set is 64 bits) of SIG_DFL: all zeroes.
    let default = [0u64; 4];
    let none = 0u64;
    // SAFETY: per this function's contract.
    unsafe {
        for &signal in launch.defaults {
            let _ = syscall!(
                Sysno::rt_sigaction,
                signal,
                default.as_ptr(),
                0,
                SIGSET_SIZE
            );
        }
        syscall!(Sysno::setpgid, 0, 0)?;
        syscall!(Sysno::chdir, launch.cwd.as_ptr())?;
        for (&fd, target) in launch.stdio.iter().zip(0..) {
            syscall!(Sysno::dup3, fd, target, 0)?;
        }
        // The pipes were made non-blocking for our read ends; a program
        // expects blocking output (the flag is the write end's own).
        for output in [1, 2] {
            syscall!(Sysno::fcntl, output, libc::F_SETFL, 0)?;
        }
        syscall!(
            Sysno::rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const none,
            0,
            SIGSET_SIZE
        )?;
        syscall!(
            Sysno::execve,
            launch.program.as_ptr(),
            launch.argvp.as_ptr(),
            launch.envp.as_ptr()
        )?;
    }
    // execve returns only when it fails.
    Err(Errno::EINVAL)
}

/// The stack a child runs on until it runs its program.
struct Stack(Box<[MaybeUninit<u8>]>);

/// Stacks of reaped children, kept for the next ones, so that their pages
/// are mapped in already.
static STACKS: Mutex<Vec<Box<[MaybeUninit<u8>]>>> = Mutex::new(Vec::new());

impl Stack {
    /// Its size. The child's code needs well under a page of it.
    const SIZE: usize = 64 * 1024;
    /// How many stacks are kept for reuse.
    const KEPT: usize = 16;

    fn take() -> Stack {
        let kept = STACKS.lock().ok().and_then(|mut stacks| stacks.pop());
        Stack(kept.unwrap_or_else(|| Box::new_uninit_slice(Self::SIZE)))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Ok(mut stacks) = STACKS.lock() {
            if stacks.len() < Self::KEPT {
                stacks.push(std::mem::take(&mut self.0));
            }
        }
    }
}

/// The signals a child resets to default handling: [`DEFAULT_SIGNALS`]
/// and every signal this process has a handler for when its first child
/// starts (the standard library's for SIGSEGV and SIGBUS, the runtime's).
fn defaulted_signals() -> &'static [libc::c_int] {
    static SIGNALS: LazyLock<Vec<libc::c_int>> = LazyLock::new(|| {
        let mut signals = DEFAULT_SIGNALS.to_vec();
        for signal in (1..32).chain(libc::SIGRTMIN()..=libc::SIGRTMAX()) {
            if signals.contains(&signal) {
                continue;
            }
            // SAFETY: asks for a disposition into a zeroed struct.
            let handled = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                libc::sigaction(signal, std::ptr::null(), &mut action) == 0
                    && action.sa_sigaction != libc::SIG_DFL
                    && action.sa_sigaction != libc::SIG_IGN
            };
            if handled {
                signals.push(signal);
            }
        }
        signals
    });
    &SIGNALS
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn output(spawned: &mut Spawned) -> String {
        let mut text = String::new();
        spawned.stdout.read_to_string(&mut text).await.unwrap();
        text
    }

    /// Each child hears of its own exit, with several running at once and
    /// ending in another order than they started: through its pidfd only
    /// when it exits, through SIGCHLD also when another one does.
    #[tokio::test]
    async fn exits_are_heard_through_pidfds_and_through_sigchld() {
        for watch in [Watch::Pidfd, Watch::Sigchld] {
            let mut waits = tokio::task::JoinSet::new();
            for (code, delay) in [(3, "0.3"), (0, "0.1"), (7, "0.2")] {
                let script = format!("sleep {delay}; exit {code}");
                let args = ["-c".to_string(), script];
                let spawned =
                    spawn_watched(Path::new("/bin/sh"), &args, Path::new("/"), &[], watch).unwrap();
                let mut child = spawned.child;
                waits.spawn(async move {
                    let mut asked = 0;
                    loop {
                        asked += 1;
                        if let Some(status) = child.next_exit().await.unwrap() {
                            return (code, status.code(), asked);
                        }
                    }
                });
            }
            let mut asked = 0;
            while let Some(joined) = waits.join_next().await {
                let (code, got, times) = joined.unwrap();
                assert_eq!(got, Some(code), "{watch:?}");
                asked += times;
            }
            match watch {
                Watch::Pidfd => assert_eq!(asked, 3, "woken by other exits"),
                Watch::Sigchld => assert!(asked > 3, "each exit wakes every child"),
            }
        }
    }

    #[tokio::test]
    async fn a_child_gets_the_inherited_environment_with_its_own_on_top() {
        let env = [
            ("ORCHESTRATOR_TEST_A".to_string(), "first".to_string()),
            ("ORCHESTRATOR_TEST_A".to_string(), "second".to_string()),
            ("HOME".to_string(), "/elsewhere".to_string()),
        ];
        let mut spawned = spawn(Path::new("/usr/bin/env"), &[], Path::new("/"), &env).unwrap();
        let text = output(&mut spawned).await;
        let vars: Vec<&str> = text.lines().collect();
        assert!(vars.contains(&"ORCHESTRATOR_TEST_A=second"), "{text}");
        assert!(!vars.contains(&"ORCHESTRATOR_TEST_A=first"), "{text}");
        assert_eq!(vars.iter().filter(|v| v.starts_with("HOME=")).count(), 1);
        assert!(vars.contains(&"HOME=/elsewhere"));
        let path = std::env::var("PATH").unwrap();
        assert!(vars.contains(&format!("PATH={path}").as_str()));
        assert!(spawned.child.wait().await.unwrap().success());
        // A variable no program could be given is refused before the start.
        let nul = [("ORCHESTRATOR_TEST_B".to_string(), "a\0b".to_string())];
        let refused = spawn(Path::new("/usr/bin/env"), &[], Path::new("/"), &nul);
        let error = refused.err().expect("a NUL byte is refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(
            error.to_string().contains("ORCHESTRATOR_TEST_B=a"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_child_runs_in_its_directory_and_group_with_default_signals() {
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        let script = "pwd; set -- $(cat /proc/$$/stat); [ \"$5\" = \"$$\" ] && echo leader";
        let mut spawned = spawn(
            Path::new("/bin/sh"),
            &["-c".to_string(), script.to_string()],
            &dir,
            &[],
        )
        .unwrap();
        let text = output(&mut spawned).await;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, [dir.to_str().unwrap(), "leader"]);
        assert!(spawned.child.wait().await.unwrap().success());
        // The program reads its own signal state (a shell would show its
        // own, which it changes while it waits for a command).
        let grep = ["-E", "^Sig(Ign|Blk)", "/proc/self/status"].map(String::from);
        let mut spawned = spawn(Path::new("/bin/grep"), &grep, &dir, &[]).unwrap();
        let text = output(&mut spawned).await;
        let lines: Vec<&str> = text.lines().collect();
        // Nothing blocked; SIGPIPE (ignored by Rust programs) is not ignored.
        assert_eq!(lines[0], "SigBlk:\t0000000000000000");
        let ignored = u64::from_str_radix(lines[1].trim_start_matches("SigIgn:\t"), 16).unwrap();
        assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "{text}");
        assert!(spawned.child.wait().await.unwrap().success());
        // Its output blocks, as programs expect, though our ends do not.
        let grep = ["-h", "^flags", "/proc/self/fdinfo/1", "/proc/self/fdinfo/2"].map(String::from);
        let mut spawned = spawn(Path::new("/bin/grep"), &grep, &dir, &[]).unwrap();
        let text = output(&mut spawned).await;
        let flags: Vec<i64> = text
            .lines()
            .map(|l| i64::from_str_radix(l.trim_start_matches("flags:").trim(), 8).unwrap())
            .collect();
        assert_eq!(flags.len(), 2, "{text}");
        assert!(
            flags.iter().all(|f| f & i64::from(libc::O_NONBLOCK) == 0),
            "{text}"
        );
        assert!(spawned.child.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn exit_codes_arrive_and_a_missing_program_or_directory_is_an_error() {
        let mut spawned = spawn(
            Path::new("/bin/sh"),
            &["-c".to_string(), "exit 7".to_string()],
            Path::new("/"),
            &[],
        )
        .unwrap();
        assert_eq!(spawned.child.wait().await.unwrap().code(), Some(7));
        assert!(spawned.child.start_error().is_none());
        // A program that cannot run, or a directory that is not there, is
        // known once the child is reaped; its 127 is not a program's.
        for (program, cwd) in [("/nonexistent/tool", "/"), ("/bin/true", "/nonexistent")] {
            let mut spawned = spawn(Path::new(program), &[], Path::new(cwd), &[]).unwrap();
            assert_eq!(spawned.child.wait().await.unwrap().code(), Some(127));
            let error = spawned.child.start_error().expect("a start error");
            assert_eq!(error.kind(), io::ErrorKind::NotFound, "{program} in {cwd}");
        }
        let tmp = tempfile::TempDir::new().unwrap();
        let script = tmp.path().join("not-executable");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let mut spawned = spawn(&script, &[], Path::new("/"), &[]).unwrap();
        spawned.child.wait().await.unwrap();
        assert_eq!(
            spawned.child.start_error().map(|e| e.kind()),
            Some(io::ErrorKind::PermissionDenied)
        );
        let nul = spawn(
            Path::new("/bin/true"),
            &["a\0b".to_string()],
            Path::new("/"),
            &[],
        );
        assert_eq!(
            nul.err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidInput)
        );
    }

    #[tokio::test]
    async fn a_dropped_child_is_killed_and_reaped() {
        let spawned = spawn(
            Path::new("/bin/sleep"),
            &["30".to_string()],
            Path::new("/"),
            &[],
        )
        .unwrap();
        let pid = spawned.child.pid;
        drop(spawned);
        // Killed at once; reaped at once, or by a later spawn once it died.
        for _ in 0..500 {
            reap_orphans();
            if !ORPHANS.lock().unwrap().iter().any(|(p, _)| *p == pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut status = 0;
        // SAFETY: asks about a pid without blocking.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert_eq!(got, -1, "the child was reaped already");
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ECHILD)
        );
    }
}
