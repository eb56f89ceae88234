//! Starting a step's process and learning when it exits, cheaply enough
//! for runs of thousands of short steps.
//!
//! `std::process::Command` (and tokio's, which wraps it) copies the whole
//! inherited environment into a sorted map, and from there into new C
//! strings, for every child given a variable of its own, as every step is;
//! and tokio opens a pidfd per child to hear of its exit. Measured on 1,000
//! `true` steps, the two cost about 30 µs of the orchestrator's time per
//! step, a quarter of what `make` spends on a whole step. Here:
//!
//! - the inherited environment is turned into C strings once per process,
//!   and a step's environment is that list with the step's variables put
//!   in place of the inherited ones of the same name;
//! - the process starts with `posix_spawn`, as the standard library starts
//!   it: in a process group of its own, in its working directory, with an
//!   empty signal mask, default handling of the signals this process
//!   handles or ignores, standard input from `/dev/null` and its output
//!   into two pipes the runtime reads without blocking;
//! - its exit is learnt from SIGCHLD: each step waiting for its process
//!   listens for the signal and asks for its own process when it comes.
//!
//! A [`Child`] dropped before its process was reaped kills the process and
//! reaps it (later, if it has not died yet), so no zombie is left.

use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{LazyLock, Mutex};

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
    /// SIGCHLD, listened for from before the process started.
    exits: Signal,
}

/// Starts `program` (a path) with `args`, in `cwd`, with the inherited
/// environment and `env` on top (a later entry wins over an earlier one of
/// the same name, as both win over inherited ones).
pub fn spawn(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(String, String)],
) -> io::Result<Spawned> {
    reap_orphans();
    let program = c_string(program.as_os_str().as_bytes())?;
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(program.clone());
    for arg in args {
        argv.push(c_string(arg.as_bytes())?);
    }
    let cwd = c_string(cwd.as_os_str().as_bytes())?;
    let own = own_environment(env)?;
    let (stdout, stdout_w) = pipe_pair()?;
    let (stderr, stderr_w) = pipe_pair()?;
    // Listening before the start: the exit cannot come unheard.
    let exits = signal(SignalKind::child())?;
    let pid = {
        let mut envp: Vec<*mut libc::c_char> = inherited()
            .iter()
            .filter(|(name, _)| !own.iter().any(|(n, _)| n == name))
            .map(|(_, var)| var.as_ptr().cast_mut())
            .chain(own.iter().map(|(_, var)| var.as_ptr().cast_mut()))
            .collect();
        envp.push(std::ptr::null_mut());
        let mut argvp: Vec<*mut libc::c_char> =
            argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
        argvp.push(std::ptr::null_mut());
        posix_spawn(
            &program,
            &argvp,
            &envp,
            &cwd,
            [null_input()?, stdout_w.as_raw_fd(), stderr_w.as_raw_fd()],
        )?
    };
    Ok(Spawned {
        child: Child {
            pid,
            reaped: false,
            exits,
        },
        stdout: pipe::Receiver::from_owned_fd_unchecked(stdout)?,
        stderr: pipe::Receiver::from_owned_fd_unchecked(stderr)?,
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
        if self.reaped {
            return Err(io::Error::other("the process was already reaped"));
        }
        match reap(self.pid) {
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

    /// Waits for the next SIGCHLD, of this child or another, and then
    /// says whether this one exited (reaping it). Cancel-safe. Only exits
    /// after the child was started count, and those are all there are:
    /// the signal was listened for from before.
    pub async fn next_exit(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.exits.recv().await.is_none() {
            return Err(io::Error::other("SIGCHLD can no longer be heard"));
        }
        reap_orphans();
        self.try_wait()
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
        if self.reaped {
            return;
        }
        // SAFETY: kill has no memory effects; the pid is this process's
        // unreaped child, so it names no other process.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        if !matches!(reap(self.pid), Ok(Some(_))) {
            if let Ok(mut orphans) = ORPHANS.lock() {
                orphans.push(self.pid);
            }
        }
    }
}

/// Children dropped before they could be reaped, killed and reaped later.
static ORPHANS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

fn reap_orphans() {
    if let Ok(mut orphans) = ORPHANS.lock() {
        orphans.retain(|&pid| matches!(reap(pid), Ok(None)));
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

/// The step's own variables as `NAME=value` C strings beside their names,
/// the last of each name only.
fn own_environment(env: &[(String, String)]) -> io::Result<Vec<(OsString, CString)>> {
    let mut own: Vec<(OsString, CString)> = Vec::with_capacity(env.len());
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
        let var = c_string(format!("{name}={value}").as_bytes())?;
        own.push((OsString::from(name), var));
    }
    Ok(own)
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` holds a NUL byte, which no program can be given",
                String::from_utf8_lossy(bytes)
            ),
        )
    })
}

/// A pipe: the read end (non-blocking, for the runtime) and the write end
/// (blocking, for the child). Both are closed on `exec`; the child gets
/// its own copy of the write end as standard output or error.
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors owned by no one else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: an fcntl on a descriptor this function owns.
    if unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
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

/// Starts the process: `stdio` become its descriptors 0, 1 and 2.
fn posix_spawn(
    program: &CStr,
    argv: &[*mut libc::c_char],
    envp: &[*mut libc::c_char],
    cwd: &CStr,
    stdio: [RawFd; 3],
) -> io::Result<libc::pid_t> {
    /// Turns a `posix_spawn*` return value into a result.
    fn check(code: libc::c_int) -> io::Result<()> {
        match code {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
    // SAFETY: the attribute and action objects are initialised before use
    // and destroyed (by the guards) after; every pointer handed over (paths,
    // argv and envp, both NULL-terminated) outlives the call.
    unsafe {
        let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        check(libc::posix_spawn_file_actions_init(actions.as_mut_ptr()))?;
        let mut actions = Actions(actions.assume_init());
        let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        check(libc::posix_spawnattr_init(attr.as_mut_ptr()))?;
        let mut attr = Attr(attr.assume_init());
        for (fd, target) in stdio.into_iter().zip(0..) {
            check(libc::posix_spawn_file_actions_adddup2(
                &mut actions.0,
                fd,
                target,
            ))?;
        }
        check(libc::posix_spawn_file_actions_addchdir_np(
            &mut actions.0,
            cwd.as_ptr(),
        ))?;
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        let mut set = set.assume_init();
        check(libc::posix_spawnattr_setsigmask(&mut attr.0, &set))?;
        for s in DEFAULT_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        check(libc::posix_spawnattr_setsigdefault(&mut attr.0, &set))?;
        // A group of its own, led by the child.
        check(libc::posix_spawnattr_setpgroup(&mut attr.0, 0))?;
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        check(libc::posix_spawnattr_setflags(
            &mut attr.0,
            flags as libc::c_short,
        ))?;
        let mut pid = 0;
        check(libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            &actions.0,
            &attr.0,
            argv.as_ptr(),
            envp.as_ptr(),
        ))?;
        Ok(pid)
    }
}

/// Destroys the file actions when dropped.
struct Actions(libc::posix_spawn_file_actions_t);

impl Drop for Actions {
    fn drop(&mut self) {
        // SAFETY: initialised by posix_spawn_file_actions_init.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// Destroys the attributes when dropped.
struct Attr(libc::posix_spawnattr_t);

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialised by posix_spawnattr_init.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
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
    }

    #[tokio::test]
    async fn a_child_runs_in_its_directory_and_group_with_default_signals() {
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        let script = "pwd; set -- $(cat /proc/$$/stat); [ \"$5\" = \"$$\" ] && echo leader; \
                      grep -E '^Sig(Ign|Blk)' /proc/$$/status";
        let mut spawned = spawn(
            Path::new("/bin/sh"),
            &["-c".to_string(), script.to_string()],
            &dir,
            &[],
        )
        .unwrap();
        let text = output(&mut spawned).await;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], dir.to_str().unwrap());
        assert_eq!(lines[1], "leader");
        // Nothing blocked; SIGPIPE (ignored by Rust programs) is not ignored.
        assert_eq!(lines[2], "SigBlk:\t0000000000000000");
        let ignored = u64::from_str_radix(lines[3].trim_start_matches("SigIgn:\t"), 16).unwrap();
        assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "{text}");
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
        let missing = spawn(Path::new("/nonexistent/tool"), &[], Path::new("/"), &[]);
        assert_eq!(
            missing.err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        let nowhere = spawn(Path::new("/bin/true"), &[], Path::new("/nonexistent"), &[]);
        assert_eq!(
            nowhere.err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
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
            if !ORPHANS.lock().unwrap().contains(&pid) {
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
