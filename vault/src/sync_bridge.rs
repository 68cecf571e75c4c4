//! Bridges between age's blocking `Read`/`Write` streams and `object_store`'s
//! async byte streams, over small bounded channels: the crypto runs on a
//! blocking thread, the store I/O on the runtime, and at most a few chunks
//! are in flight, so memory stays flat whatever the object size.

use std::io::{self, Read, Write};

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Size of the chunks handed from the blocking side to the uploader.
pub(crate) const CHUNK: usize = 1024 * 1024;
/// Chunks in flight per channel.
pub(crate) const DEPTH: usize = 4;

/// A `Write` that hashes and counts what passes and sends it, in `CHUNK`
/// pieces, to an async consumer.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    hasher: Sha256,
    size: u64,
}

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChannelWriter {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the store upload stopped"))?;
        self.buf.reserve(CHUNK);
        Ok(())
    }

    /// Sends what is buffered and returns (hex sha256, byte count).
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        self.send_buffered()?;
        Ok((hex::encode(self.hasher.finalize()), self.size))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.hasher.update(&data[..n]);
        self.size += n as u64;
        if self.buf.len() >= CHUNK {
            self.send_buffered()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `Read` over chunks an async producer sends, hashing and counting what
/// passes.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    hasher: Sha256,
    size: u64,
    done: bool,
}

impl ChannelReader {
    pub(crate) fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
            hasher: Sha256::new(),
            size: 0,
            done: false,
        }
    }

    /// Reads what is left and returns (hex sha256, byte count) of the whole
    /// stream, or the first read error.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((hex::encode(self.hasher.finalize()), self.size))
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.current.len());
        let chunk = self.current.split_to(n);
        out[..n].copy_from_slice(&chunk);
        self.hasher.update(&chunk);
        self.size += n as u64;
        Ok(n)
    }
}

/// Makes a channel for `ChannelReader`.
pub(crate) fn read_channel() -> (
    mpsc::Sender<io::Result<Bytes>>,
    mpsc::Receiver<io::Result<Bytes>>,
) {
    mpsc::channel(DEPTH)
}

/// Makes a channel for `ChannelWriter`.
pub(crate) fn write_channel() -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
    mpsc::channel(DEPTH)
}
