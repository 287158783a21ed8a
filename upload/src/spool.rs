//! Writes an upload's bytes to its file on a thread of its own, so that hashing (on the ingest
//! thread) and writing overlap instead of taking turns, and starts the disk writing the file
//! while it grows, so that the fsync before the answer finds little left to write.
//!
//! Why: a single thread that hashes a chunk, then writes it, then waits for the next is bound by
//! the sum of the two; on a disk, a file written whole and fsynced at the end is written out
//! only once the kernel's dirty-page threshold is reached (gigabytes), leaving the disk idle
//! for the first seconds of an upload and the client waiting for the rest at the end.
//!
//! The early writing is asked for with `posix_fadvise(DONTNEED)` on each window just written:
//! on Linux it starts the writeback of the window's dirty pages without waiting for it and
//! without the device cache flush that an `fdatasync` per window would add (a first version
//! did that: no faster on this machine's virtual disk, within its noise), and it drops only
//! pages already clean, which a window just written has next to none of. Where the file system
//! ignores the advice (tmpfs) nothing changes.
//!
//! Memory stays bounded: [`BUFFERS`] buffers of [`BUFFER_BYTES`] go round between the two
//! threads (the ingest thread waits for a free one when the disk is slower than the network).

use rustix::fs::{fadvise, Advice};
use std::fs::File;
use std::io::{self, Write};
use std::num::NonZeroU64;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes per write: large enough that the system calls cost nothing next to the copy.
pub const BUFFER_BYTES: usize = 1 << 20;
/// Buffers in flight between the ingest thread and the writer (their memory: 4 MiB).
pub const BUFFERS: usize = 4;
/// The disk is asked to write the file out each time this much more was written (the size of
/// the resumable uploads' checkpoints, the service's `CHECKPOINT_BYTES`).
pub const WRITEBACK_BYTES: u64 = 64 << 20;

/// The writer side failed (the disk is full, the file system went away): its error.
#[derive(Debug, thiserror::Error)]
#[error("writing the upload: {0}")]
pub struct SpoolError(#[from] pub io::Error);

/// Bytes on their way to one file.
pub struct Spool {
    /// The buffer being filled.
    current: Vec<u8>,
    /// Full buffers to the writer; `None` once finished.
    full: Option<SyncSender<Vec<u8>>>,
    /// Written buffers back from the writer, to be filled again.
    free: Receiver<Vec<u8>>,
    /// Buffers made so far (at most [`BUFFERS`]).
    made: usize,
    writer: Option<JoinHandle<io::Result<()>>>,
}

impl Spool {
    /// Starts the writer thread on `file` (a handle of its own: the caller keeps its file).
    pub fn new(file: File) -> io::Result<Spool> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let writer = std::thread::Builder::new()
            .name("upload-writer".into())
            .spawn(move || write_all(file, &full_rx, &free_tx))?;
        Ok(Spool {
            current: Vec::with_capacity(BUFFER_BYTES),
            full: Some(full_tx),
            free: free_rx,
            made: 1,
            writer: Some(writer),
        })
    }

    /// Queues `data` for the file (copied; the caller may reuse its memory at once).
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), SpoolError> {
        while !data.is_empty() {
            let room = BUFFER_BYTES - self.current.len();
            let (now, later) = data.split_at(room.min(data.len()));
            self.current.extend_from_slice(now);
            data = later;
            if self.current.len() == BUFFER_BYTES {
                self.send_current()?;
            }
        }
        Ok(())
    }

    /// Writes what is queued and waits for the writer: every byte is in the file (not yet
    /// durable: the caller fsyncs before it answers).
    pub fn finish(mut self) -> Result<(), SpoolError> {
        if !self.current.is_empty() {
            self.send_current()?;
        }
        self.full = None;
        self.join()
    }

    fn send_current(&mut self) -> Result<(), SpoolError> {
        let next = self.next_buffer()?;
        let full = std::mem::replace(&mut self.current, next);
        let sent = self.full.as_ref().map(|tx| tx.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            // The writer stopped: its error says why.
            _ => Err(self.writer_failure()),
        }
    }

    /// An empty buffer: a new one while fewer than [`BUFFERS`] exist, else the next one the
    /// writer gives back (waiting for it).
    fn next_buffer(&mut self) -> Result<Vec<u8>, SpoolError> {
        if let Ok(mut b) = self.free.try_recv() {
            b.clear();
            return Ok(b);
        }
        if self.made < BUFFERS {
            self.made += 1;
            return Ok(Vec::with_capacity(BUFFER_BYTES));
        }
        match self.free.recv() {
            Ok(mut b) => {
                b.clear();
                Ok(b)
            }
            Err(_) => Err(self.writer_failure()),
        }
    }

    fn writer_failure(&mut self) -> SpoolError {
        self.full = None;
        match self.join() {
            Err(e) => e,
            Ok(()) => SpoolError(io::Error::other("the upload writer stopped")),
        }
    }

    fn join(&mut self) -> Result<(), SpoolError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        match writer.join() {
            Ok(r) => r.map_err(SpoolError),
            Err(_) => Err(SpoolError(io::Error::other("the upload writer panicked"))),
        }
    }
}

impl Drop for Spool {
    /// An upload given up (a limit, a client gone): the writer stops after what it holds.
    fn drop(&mut self) {
        self.full = None;
        let _ = self.join();
    }
}

/// The writer thread: writes each buffer, gives it back, and after every [`WRITEBACK_BYTES`]
/// starts the writeback of that window.
fn write_all(
    mut file: File,
    full: &Receiver<Vec<u8>>,
    free: &SyncSender<Vec<u8>>,
) -> io::Result<()> {
    let mut written = 0u64;
    let mut window_start = 0u64;
    for buf in full.iter() {
        file.write_all(&buf)?;
        written += buf.len() as u64;
        if written - window_start >= WRITEBACK_BYTES {
            start_writeback(&file, window_start, written);
            window_start = written;
        }
        // The ingest thread may be gone (finished or given up): nothing to give back to.
        let _ = free.try_send(buf);
    }
    Ok(())
}

/// Starts the disk writing `start..end` of the file. Advice only: a refusal changes nothing
/// but the speed (the fsync before the answer writes whatever is left).
fn start_writeback(file: &File, start: u64, end: u64) {
    if let Some(len) = NonZeroU64::new(end - start) {
        let _ = fadvise(file, start, Some(len), Advice::DontNeed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_arrives_in_order_across_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut spool = Spool::new(file).unwrap();
        let data: Vec<u8> = (0..(BUFFER_BYTES * BUFFERS * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        // Odd-sized pieces, as the socket delivers them.
        for piece in data.chunks(70_001) {
            spool.write(piece).unwrap();
        }
        spool.finish().unwrap();
        assert!(std::fs::read(&path).unwrap() == data);
    }

    #[test]
    fn a_failing_writer_is_reported_not_hung() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        // Read-only: every write fails.
        let file = File::open(&path).unwrap();
        let mut spool = Spool::new(file).unwrap();
        let data = vec![1u8; BUFFER_BYTES * (BUFFERS + 2)];
        let e = spool.write(&data).and_then(|()| spool.finish());
        assert!(e.is_err());
    }
}
