//! Bridges the async request body to the blocking ingest thread with a bounded channel, so an
//! upload holds at most a few chunks in memory whatever its size.

use bytes::{Buf, Bytes};
use std::io::{self, BufRead, Read};
use tokio::sync::mpsc;

/// What the async side sends. The stream only counts as complete when `End` arrives: a channel
/// that closes without it means the request was cancelled (client gone), never a short dump.
pub enum Chunk {
    Data(Bytes),
    End,
    Failed(String),
}

/// Chunks in flight between the socket and the disk.
pub const CHANNEL_DEPTH: usize = 8;

pub fn channel() -> (mpsc::Sender<Chunk>, ChannelReader) {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    (
        tx,
        ChannelReader {
            rx,
            current: Bytes::new(),
            done: false,
        },
    )
}

/// A blocking `Read` over the chunks (call only from a blocking thread).
pub struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    done: bool,
}

/// The error kind an incomplete upload is reported with.
pub use upload::Incomplete;

impl ChannelReader {
    /// Waits for the next chunk once the current one is used up (nothing left at the end).
    fn refill(&mut self) -> io::Result<()> {
        while self.current.is_empty() && !self.done {
            match self.rx.blocking_recv() {
                Some(Chunk::Data(b)) => self.current = b,
                Some(Chunk::End) => self.done = true,
                Some(Chunk::Failed(why)) => return Err(io::Error::other(Incomplete(why))),
                None => return Err(io::Error::other(Incomplete("request cancelled".into()))),
            }
        }
        Ok(())
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.refill()?;
        let n = buf.len().min(self.current.len());
        let head = self.current.split_to(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(&head);
        }
        Ok(n)
    }
}

/// The chunks as the socket delivered them, without a copy into a buffer of the reader's: an
/// upload's bytes are hashed and handed to the file writer straight from them.
impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill()?;
        Ok(&self.current)
    }

    fn consume(&mut self, amt: usize) {
        self.current.advance(amt.min(self.current.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunks_until_end() {
        let (tx, mut r) = channel();
        let t = std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map(|_| v)
        });
        tx.blocking_send(Chunk::Data(Bytes::from_static(b"ab")))
            .unwrap();
        tx.blocking_send(Chunk::Data(Bytes::from_static(b"cd")))
            .unwrap();
        tx.blocking_send(Chunk::End).unwrap();
        assert_eq!(t.join().unwrap().unwrap(), b"abcd");
    }

    #[test]
    fn buffered_reads_see_each_chunk_whole() {
        let (tx, mut r) = channel();
        let t = std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                let chunk = r.fill_buf()?.to_vec();
                if chunk.is_empty() {
                    return Ok::<_, io::Error>(seen);
                }
                r.consume(chunk.len());
                seen.push(chunk);
            }
        });
        tx.blocking_send(Chunk::Data(Bytes::from_static(b"abc")))
            .unwrap();
        tx.blocking_send(Chunk::Data(Bytes::from_static(b"de")))
            .unwrap();
        tx.blocking_send(Chunk::End).unwrap();
        assert_eq!(
            t.join().unwrap().unwrap(),
            [b"abc".to_vec(), b"de".to_vec()]
        );
    }

    #[test]
    fn a_channel_closed_without_end_is_an_error_not_eof() {
        let (tx, mut r) = channel();
        tx.blocking_send(Chunk::Data(Bytes::from_static(b"ab")))
            .unwrap();
        drop(tx);
        let mut v = Vec::new();
        let e = r.read_to_end(&mut v).unwrap_err();
        assert!(e.to_string().contains("cancelled"), "{e}");
    }
}
