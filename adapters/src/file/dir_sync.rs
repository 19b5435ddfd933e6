//! Folder fsyncs shared by the writes that need them at the same time.
//!
//! A rename is durable once its folder is fsynced. Many deliveries renaming in one outbox at once
//! each need such an fsync, and one fsync that *starts* after a rename covers it. So a write takes
//! a ticket after its rename; if an fsync is already running, the write waits for the next one,
//! which then covers every ticket taken before it started. Under load, one fsync answers many
//! writes instead of one each (on ext4 each is at least one synchronous write of the folder's
//! blocks and its inode).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// One shared fsync per folder, for every folder a [`super::LocalFolders`] touches.
#[derive(Debug, Default)]
pub(super) struct FolderSyncs {
    folders: Mutex<HashMap<PathBuf, Arc<SharedSync>>>,
}

impl FolderSyncs {
    /// Makes everything renamed in `dir` before this call durable.
    pub(super) fn sync(&self, dir: &Path) -> io::Result<()> {
        let shared = {
            let mut folders = self.folders.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(folders.entry(dir.to_owned()).or_default())
        };
        shared.sync(|| File::open(dir)?.sync_all())
    }
}

/// The shared fsync of one folder.
#[derive(Debug, Default)]
pub(super) struct SharedSync {
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Tickets handed out so far; ticket `n` is the `n`-th caller.
    issued: u64,
    /// Every ticket up to this one is covered by an fsync that succeeded.
    covered: u64,
    /// An fsync is running (its caller holds no lock while it runs).
    running: bool,
}

impl SharedSync {
    /// Returns once an fsync (`fsync`) that started after this call began has succeeded, running
    /// it here if no other caller is. An fsync that fails is reported to the caller that ran it;
    /// the others it would have covered run their own.
    pub(super) fn sync(&self, fsync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mut state = self.lock();
        state.issued += 1;
        let ticket = state.issued;
        loop {
            if state.covered >= ticket {
                return Ok(());
            }
            if !state.running {
                state.running = true;
                let covers = state.issued;
                drop(state);
                let result = fsync();
                let mut state = self.lock();
                state.running = false;
                if result.is_ok() {
                    state.covered = state.covered.max(covers);
                }
                drop(state);
                self.finished.notify_all();
                return result;
            }
            state = self
                .finished
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::*;

    /// Starts a caller whose fsync blocks until `release` is sent; returns once it runs.
    fn blocked_leader(
        shared: &Arc<SharedSync>,
        runs: &Arc<AtomicUsize>,
        result: io::Result<()>,
    ) -> (mpsc::Sender<()>, thread::JoinHandle<io::Result<()>>) {
        let (release, released) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let (shared, runs) = (Arc::clone(shared), Arc::clone(runs));
        let leader = thread::spawn(move || {
            shared.sync(|| {
                runs.fetch_add(1, Ordering::SeqCst);
                started.send(()).unwrap();
                released.recv().unwrap();
                result
            })
        });
        running.recv().unwrap();
        (release, leader)
    }

    fn counted(runs: &Arc<AtomicUsize>) -> impl FnOnce() -> io::Result<()> + use<> {
        let runs = Arc::clone(runs);
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// Waits until `n` callers wait on `shared` (its lock is free and they are parked).
    #[allow(
        clippy::disallowed_methods,
        reason = "a plain test thread, not an async worker"
    )]
    fn wait_for_waiters(shared: &SharedSync, n: u64) {
        for _ in 0..2_000 {
            if shared.lock().issued >= n {
                return;
            }
            thread::sleep(Duration::from_millis(1));
        }
        panic!("{n} callers never arrived");
    }

    #[test]
    fn callers_arriving_during_an_fsync_share_the_next_one() {
        let shared = Arc::new(SharedSync::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, leader) = blocked_leader(&shared, &runs, Ok(()));
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let (shared, runs) = (Arc::clone(&shared), Arc::clone(&runs));
                thread::spawn(move || shared.sync(counted(&runs)))
            })
            .collect();
        wait_for_waiters(&shared, 9);
        release.send(()).unwrap();
        leader.join().unwrap().unwrap();
        for waiter in waiters {
            waiter.join().unwrap().unwrap();
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "the running fsync and one more for all eight who came during it"
        );
    }

    #[test]
    fn an_fsync_started_before_a_caller_does_not_answer_it() {
        let shared = Arc::new(SharedSync::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, leader) = blocked_leader(&shared, &runs, Ok(()));
        let (done, finished) = mpsc::channel();
        let late = {
            let (shared, runs) = (Arc::clone(&shared), Arc::clone(&runs));
            thread::spawn(move || {
                let result = shared.sync(counted(&runs));
                done.send(runs.load(Ordering::SeqCst)).unwrap();
                result
            })
        };
        wait_for_waiters(&shared, 2);
        release.send(()).unwrap();
        leader.join().unwrap().unwrap();
        late.join().unwrap().unwrap();
        assert_eq!(
            finished.recv().unwrap(),
            2,
            "the late caller returned only after an fsync of its own"
        );
    }

    #[test]
    fn a_failed_fsync_fails_its_caller_and_the_others_sync_again() {
        let shared = Arc::new(SharedSync::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, leader) =
            blocked_leader(&shared, &runs, Err(io::Error::other("device gone")));
        let waiter = {
            let (shared, runs) = (Arc::clone(&shared), Arc::clone(&runs));
            thread::spawn(move || shared.sync(counted(&runs)))
        };
        wait_for_waiters(&shared, 2);
        release.send(()).unwrap();
        assert_eq!(
            leader.join().unwrap().unwrap_err().to_string(),
            "device gone"
        );
        waiter.join().unwrap().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Nothing is left covered by the failure: a new caller syncs again.
        shared.sync(counted(&runs)).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn folders_are_synced_for_real() {
        let tmp = tempfile::tempdir().unwrap();
        let syncs = FolderSyncs::default();
        syncs.sync(tmp.path()).unwrap();
        let err = syncs.sync(&tmp.path().join("absent")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
