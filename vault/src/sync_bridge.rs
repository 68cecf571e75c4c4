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

/// Block size of the file pipelines.
const BLOCK: usize = 256 * 1024;
/// Blocks in flight per pipeline stage.
const BLOCKS: usize = 8;

/// The reading end of [`with_reader_thread`]: blocks read ahead by another
/// thread. Consumed blocks go back to the reader for reuse, so a pipeline
/// allocates its few blocks once (fresh 256 KiB allocations would each cost
/// page faults).
pub(crate) struct PipeIn {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl PipeIn {
    /// The next block (or the unread rest of the current one); `None` at the
    /// end of the input. Hand it back with [`PipeIn::recycle`].
    pub(crate) fn next_block(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.pos < self.current.len() {
            let rest = self.current.split_off(self.pos);
            self.current.clear();
            self.pos = 0;
            return Ok(Some(rest));
        }
        match self.rx.recv() {
            Ok(Ok(block)) => Ok(Some(block)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Returns a consumed block to the reader thread.
    pub(crate) fn recycle(&mut self, block: Vec<u8>) {
        let _ = self.back.try_send(block);
    }
}

impl Read for PipeIn {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(block)) => {
                    let old = std::mem::replace(&mut self.current, block);
                    self.recycle(old);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The writing end of [`with_writer_thread`]: blocks written by another
/// thread, which hands them back for reuse.
pub(crate) struct PipeOut {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    back: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

impl PipeOut {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let fresh = match self.back.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(BLOCK),
        };
        let block = std::mem::replace(&mut self.buf, fresh);
        self.tx
            .send(block)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "output writer stopped"))
    }
}

impl Write for PipeOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= BLOCK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Runs `body` over `input` read ahead on a second thread, so file I/O and
/// decryption/encryption overlap on two cores. Memory: a few blocks.
pub(crate) fn with_reader_thread<R, T, E>(
    input: R,
    body: impl FnOnce(&mut PipeIn) -> Result<T, E>,
) -> Result<T, E>
where
    R: Read + Send,
{
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(BLOCKS);
        let (back, free) = std::sync::mpsc::sync_channel::<Vec<u8>>(BLOCKS + 2);
        s.spawn(move || {
            let mut input = input;
            loop {
                let mut block = free.try_recv().unwrap_or_default();
                block.resize(BLOCK, 0);
                let mut filled = 0;
                let res = loop {
                    match input.read(&mut block[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == BLOCK {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                block.truncate(filled);
                let eof = filled < BLOCK;
                if filled > 0 && tx.send(Ok(block)).is_err() {
                    return;
                }
                if let Err(e) = res {
                    let _ = tx.send(Err(e));
                    return;
                }
                if eof {
                    return;
                }
            }
        });
        let mut pipe = PipeIn {
            rx,
            back,
            current: Vec::new(),
            pos: 0,
        };
        body(&mut pipe)
        // Dropping `pipe` stops the reader at its next send.
    })
}

/// Runs `body` against a writer whose blocks `output` writes on a second
/// thread. An output error wins over the body's result (the body then only
/// saw a broken pipe).
pub(crate) fn with_writer_thread<W, T>(
    output: W,
    body: impl FnOnce(&mut PipeOut) -> Result<T, crate::VaultError>,
    what: &str,
) -> Result<T, crate::VaultError>
where
    W: Write + Send,
{
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BLOCKS);
        let (back, free) = std::sync::mpsc::sync_channel::<Vec<u8>>(BLOCKS + 2);
        let writer = s.spawn(move || -> io::Result<()> {
            let mut output = output;
            for block in rx {
                output.write_all(&block)?;
                let _ = back.try_send(block);
            }
            output.flush()
        });
        let mut pipe = PipeOut {
            tx,
            back: free,
            buf: Vec::with_capacity(BLOCK),
        };
        let result = body(&mut pipe).and_then(|v| {
            pipe.flush()
                .map_err(|e| crate::VaultError::io("output", e))?;
            Ok(v)
        });
        drop(pipe);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("output writer panicked")));
        match written {
            Err(e) => Err(crate::VaultError::io(what, e)),
            Ok(()) => result,
        }
    })
}
