//! age envelopes: encrypt, decrypt and re-encrypt as streams.
//!
//! Security argument: every function here streams in fixed-size chunks
//! (age's 64 KiB STREAM chunks), so memory is flat in the input size, and
//! plaintext only exists in the caller's writer. age authenticates each chunk
//! before we see it, but a truncated or altered stream is only detected when
//! its bad chunk arrives; callers that write to a writer must therefore treat
//! the output as garbage on `Err`. The `*_file` functions do this for them:
//! they write to a temporary file in the destination directory and rename it
//! into place only after the whole stream authenticated, so a failure leaves
//! no partial output behind.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::armor::ArmoredReader;
use age::{DecryptError, Decryptor, Encryptor};

use crate::sync_bridge::{with_reader_thread, with_writer_thread, PipeIn, PipeOut};
use crate::VaultError;

/// Copy buffer; a multiple of age's chunk so whole chunks move per call.
const BUF: usize = 256 * 1024;

/// Magic of a binary age file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/";
/// Begin line of an armored (`age -a`) file.
const ARMOR_MAGIC: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Parses one recipient: `age1...` (X25519), `ssh-rsa AAAA...` or
/// `ssh-ed25519 AAAA...` (an OpenSSH public key line; a trailing comment is
/// ignored).
pub fn parse_recipient(s: &str) -> Result<Box<dyn age::Recipient + Send>, VaultError> {
    let s = s.trim();
    let err = |reason: String| VaultError::Recipient {
        recipient: s.to_string(),
        reason,
    };
    if s.starts_with("age1") {
        let r = age::x25519::Recipient::from_str(s).map_err(|e| err(e.to_string()))?;
        Ok(Box::new(r))
    } else if s.starts_with("ssh-") {
        // Keep `type base64`, drop the comment: age's parser wants the key only.
        let key: Vec<&str> = s.split_whitespace().take(2).collect();
        let key = key.join(" ");
        let r = age::ssh::Recipient::from_str(&key).map_err(|e| err(format!("{e:?}")))?;
        Ok(Box::new(r))
    } else {
        Err(err(
            "expected an age1... X25519 key or an OpenSSH ssh-rsa / ssh-ed25519 public key".into(),
        ))
    }
}

/// Parses every recipient in `list`; an empty list is an error because an
/// age file needs at least one recipient.
pub fn parse_recipients(
    list: &[String],
) -> Result<Vec<Box<dyn age::Recipient + Send>>, VaultError> {
    if list.is_empty() {
        return Err(VaultError::NoRecipients);
    }
    list.iter().map(|s| parse_recipient(s)).collect()
}

/// Reads a recipients file as `age -R` does: one recipient per line, blank
/// lines and `#` comments ignored. Each line is validated.
pub fn parse_recipients_file(path: &Path) -> Result<Vec<String>, VaultError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| VaultError::io(format!("recipients file {}", path.display()), e))?;
    let list: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        return Err(VaultError::Recipient {
            recipient: path.display().to_string(),
            reason: "file holds no recipients".into(),
        });
    }
    parse_recipients(&list)?;
    Ok(list)
}

/// True when `bytes` starts like an age file (binary or armored), or is a
/// prefix of such a start (a short first read).
pub fn is_age_prefix(bytes: &[u8]) -> bool {
    let starts = |magic: &[u8]| {
        let n = bytes.len().min(magic.len());
        bytes[..n] == magic[..n]
    };
    !bytes.is_empty() && (starts(AGE_MAGIC) || starts(ARMOR_MAGIC))
}

/// Encrypts `reader` to `recipients` into `writer`, streaming. Returns the
/// number of plaintext bytes.
pub fn encrypt_stream<R: Read, W: Write>(
    reader: R,
    writer: W,
    recipients: &[String],
) -> Result<u64, VaultError> {
    let parsed = parse_recipients(recipients)?;
    encrypt_to(reader, writer, &parsed, "input")
}

pub(crate) fn encrypt_to<R: Read, W: Write>(
    mut reader: R,
    writer: W,
    recipients: &[Box<dyn age::Recipient + Send>],
    what: &str,
) -> Result<u64, VaultError> {
    let mut buf = vec![0u8; BUF];
    encrypt_with(writer, recipients, |sink| {
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(VaultError::io(what, e)),
            };
            sink.write_all(&buf[..n])
                .map_err(|e| VaultError::io("output", e))?;
            total += n as u64;
        }
    })
}

/// As [`encrypt_to`] for a read-ahead pipe: whole blocks go straight into
/// the encryptor, without an intermediate copy.
fn encrypt_blocks<W: Write>(
    pipe: &mut PipeIn,
    writer: W,
    recipients: &[Box<dyn age::Recipient + Send>],
    what: &str,
) -> Result<u64, VaultError> {
    encrypt_with(writer, recipients, |sink| {
        let mut total = 0u64;
        while let Some(block) = pipe.next_block().map_err(|e| VaultError::io(what, e))? {
            sink.write_all(&block)
                .map_err(|e| VaultError::io("output", e))?;
            total += block.len() as u64;
            pipe.recycle(block);
        }
        Ok(total)
    })
}

/// Writes an age header for `recipients` to `writer`, lets `feed` write the
/// plaintext, then finishes the stream (the final chunk).
fn encrypt_with<W: Write>(
    writer: W,
    recipients: &[Box<dyn age::Recipient + Send>],
    feed: impl FnOnce(&mut age::stream::StreamWriter<W>) -> Result<u64, VaultError>,
) -> Result<u64, VaultError> {
    let encryptor = Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as _))
        .map_err(VaultError::Encrypt)?;
    let mut sink = encryptor
        .wrap_output(writer)
        .map_err(|e| VaultError::io("output", e))?;
    let total = feed(&mut sink)?;
    sink.finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| VaultError::io("output", e))?;
    Ok(total)
}

/// Opens an age stream for reading plaintext: checks the magic, parses the
/// header and unwraps the file key with `identity`.
pub(crate) fn open_age<'a, R: Read + 'a>(
    reader: R,
    identity: &dyn age::Identity,
    what: &str,
) -> Result<Box<dyn Read + 'a>, VaultError> {
    // Peek at the magic without a buffering layer: age's payload reader then
    // reads whole chunks straight from `reader` (one copy less per chunk).
    let mut reader = reader;
    let mut head = Vec::with_capacity(ARMOR_MAGIC.len());
    (&mut reader)
        .take(ARMOR_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| VaultError::io(what, e))?;
    if head.is_empty() {
        return Err(VaultError::Empty { what: what.into() });
    }
    if !is_age_prefix(&head) {
        return Err(VaultError::NotAge { what: what.into() });
    }
    let binary = head.starts_with(AGE_MAGIC);
    let input = io::Cursor::new(head).chain(reader);
    if binary {
        let decryptor = Decryptor::new(input).map_err(|e| header_error(e, what))?;
        let plain = decryptor
            .decrypt(std::iter::once(identity))
            .map_err(|e| header_error(e, what))?;
        return Ok(Box::new(plain));
    }
    let armored = ArmoredReader::new(BufReader::with_capacity(BUF, input));
    let decryptor = Decryptor::new_buffered(armored).map_err(|e| header_error(e, what))?;
    let plain = decryptor
        .decrypt(std::iter::once(identity))
        .map_err(|e| header_error(e, what))?;
    Ok(Box::new(plain))
}

/// Refuses empty and non-age input before age's parser sees it, so the
/// message says what the file is rather than how parsing failed.
fn sniff<R: Read>(input: &mut BufReader<R>, what: &str) -> Result<(), VaultError> {
    let head = loop {
        match input.fill_buf() {
            Ok(b) => break b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(VaultError::io(what, e)),
        }
    };
    if head.is_empty() {
        return Err(VaultError::Empty { what: what.into() });
    }
    if !is_age_prefix(head) {
        return Err(VaultError::NotAge { what: what.into() });
    }
    Ok(())
}

fn header_error(e: DecryptError, what: &str) -> VaultError {
    let what = what.to_string();
    match e {
        DecryptError::NoMatchingKeys => VaultError::WrongKey { what },
        // age's streaming header parser cannot tell a cut header from a
        // malformed one: both run out of input while looking for the MAC line.
        DecryptError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => VaultError::BadHeader {
            what,
            detail: "header is incomplete: truncated or malformed".into(),
        },
        DecryptError::Io(e) if e.kind() != io::ErrorKind::InvalidData => {
            VaultError::Io { what, source: e }
        }
        other => VaultError::BadHeader {
            what,
            detail: other.to_string(),
        },
    }
}

fn payload_error(e: io::Error, what: &str) -> VaultError {
    let what = what.to_string();
    match e.kind() {
        io::ErrorKind::UnexpectedEof => VaultError::Truncated { what },
        io::ErrorKind::InvalidData => VaultError::BadPayload { what, source: e },
        _ => VaultError::Io { what, source: e },
    }
}

/// Copies authenticated plaintext from `plain` to `writer`, telling payload
/// errors (reading) from output errors (writing).
fn pump<R: Read, W: Write>(mut plain: R, mut writer: W, what: &str) -> Result<u64, VaultError> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match plain.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(payload_error(e, what)),
        };
        writer
            .write_all(&buf[..n])
            .map_err(|e| VaultError::io("output", e))?;
        total += n as u64;
    }
    writer.flush().map_err(|e| VaultError::io("output", e))?;
    Ok(total)
}

/// Decrypts the age stream `reader` with `identity` into `writer`. Returns
/// the number of plaintext bytes. On `Err`, whatever reached `writer` must be
/// discarded (see the module note); [`decrypt_file`] does that for files.
pub fn decrypt_stream<R: Read, W: Write>(
    reader: R,
    writer: W,
    identity: &dyn age::Identity,
) -> Result<u64, VaultError> {
    decrypt_labeled(reader, writer, identity, "input")
}

pub(crate) fn decrypt_labeled<R: Read, W: Write>(
    reader: R,
    writer: W,
    identity: &dyn age::Identity,
    what: &str,
) -> Result<u64, VaultError> {
    let plain = open_age(reader, identity, what)?;
    pump(plain, writer, what)
}

/// Decrypts `reader` with `identity` and encrypts the plaintext to
/// `recipients` into `writer`, chunk by chunk: plaintext exists only in
/// memory buffers, never in a file. Returns the number of plaintext bytes.
/// Recipients are parsed before anything is read, so a bad recipient fails
/// without touching the input.
pub fn reencrypt_stream<R: Read, W: Write>(
    reader: R,
    writer: W,
    identity: &dyn age::Identity,
    recipients: &[String],
) -> Result<u64, VaultError> {
    reencrypt_labeled(reader, writer, identity, recipients, "input")
}

pub(crate) fn reencrypt_labeled<R: Read, W: Write>(
    reader: R,
    writer: W,
    identity: &dyn age::Identity,
    recipients: &[String],
    what: &str,
) -> Result<u64, VaultError> {
    let parsed = parse_recipients(recipients)?;
    let plain = open_age(reader, identity, what)?;
    // Payload errors surface from the plaintext reader; keep their age
    // classification instead of reporting them as input I/O errors.
    let mut failure: Option<VaultError> = None;
    let classified = ClassifyReader {
        inner: plain,
        what,
        failure: &mut failure,
    };
    let result = encrypt_to(classified, writer, &parsed, what);
    match (result, failure) {
        (_, Some(e)) => Err(e),
        (r, None) => r,
    }
}

/// Remembers the classified age error of a plaintext reader, so that a
/// consumer which only sees `io::Error` can hand back the precise one.
struct ClassifyReader<'a, R> {
    inner: R,
    what: &'a str,
    failure: &'a mut Option<VaultError>,
}

impl<R: Read> Read for ClassifyReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let echo = io::Error::new(e.kind(), e.to_string());
                *self.failure = Some(payload_error(e, self.what));
                Err(echo)
            }
            other => other,
        }
    }
}

/// Parses the age header of `reader` without decrypting (no key needed):
/// the check that a contributor's ciphertext is an age file at all. Empty,
/// non-age and malformed headers are refused.
pub fn check_age_header<R: Read>(reader: R, what: &str) -> Result<(), VaultError> {
    let mut input = BufReader::with_capacity(BUF, reader);
    sniff(&mut input, what)?;
    Decryptor::new_buffered(ArmoredReader::new(input))
        .map(|_| ())
        .map_err(|e| header_error(e, what))
}

/// Encrypts the file `input` to `recipients` into `output` atomically: the
/// output appears (mode 0600) only when complete.
pub fn encrypt_file(input: &Path, output: &Path, recipients: &[String]) -> Result<u64, VaultError> {
    let parsed = parse_recipients(recipients)?;
    let what = input.display().to_string();
    let src = std::fs::File::open(input).map_err(|e| VaultError::io(&what, e))?;
    write_atomically(output, |w| {
        with_reader_thread(src, |r| encrypt_blocks(r, w, &parsed, &what))
    })
}

/// Decrypts the age file `input` with `identity` into `output` atomically:
/// on any failure (truncation, tampering, wrong key) no output file exists.
pub fn decrypt_file(
    input: &Path,
    output: &Path,
    identity: &dyn age::Identity,
) -> Result<u64, VaultError> {
    let what = input.display().to_string();
    let src = std::fs::File::open(input).map_err(|e| VaultError::io(&what, e))?;
    write_atomically(output, |w| {
        with_reader_thread(src, |r| decrypt_labeled(r, w, identity, &what))
    })
}

/// Runs `body` against a 0600 temporary file beside `output` (written on a
/// second thread) and renames it to `output` only if `body` succeeded; the
/// temporary file is removed otherwise.
pub(crate) fn write_atomically<T>(
    output: &Path,
    body: impl FnOnce(&mut PipeOut) -> Result<T, VaultError>,
) -> Result<T, VaultError> {
    let out_what = || output.display().to_string();
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".collective-partial-")
        .tempfile_in(dir)
        .map_err(|e| VaultError::io(out_what(), e))?;
    let value = with_writer_thread(tmp.as_file(), body, &out_what())?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| VaultError::io(out_what(), e))?;
    tmp.persist(output)
        .map_err(|e| VaultError::io(out_what(), e.error))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x25519() -> (age::x25519::Identity, String) {
        let id = age::x25519::Identity::generate();
        let r = id.to_public().to_string();
        (id, r)
    }

    #[test]
    fn roundtrip_x25519() {
        let (id, r) = x25519();
        let mut ct = Vec::new();
        let n = encrypt_stream(&b"hello"[..], &mut ct, &[r]).unwrap();
        assert_eq!(n, 5);
        let mut pt = Vec::new();
        decrypt_stream(&ct[..], &mut pt, &id).unwrap();
        assert_eq!(pt, b"hello");
    }

    #[test]
    fn recipient_parsing_rejects_garbage() {
        assert!(matches!(
            parse_recipient("hello"),
            Err(VaultError::Recipient { .. })
        ));
        assert!(matches!(
            parse_recipient("age1notreally"),
            Err(VaultError::Recipient { .. })
        ));
        assert!(matches!(
            parse_recipient("ssh-rsa AAAAnope"),
            Err(VaultError::Recipient { .. })
        ));
        assert!(matches!(
            parse_recipients(&[]),
            Err(VaultError::NoRecipients)
        ));
    }

    #[test]
    fn sniffing() {
        assert!(is_age_prefix(b"age-encryption.org/v1\n"));
        assert!(is_age_prefix(b"age-enc"));
        assert!(is_age_prefix(b"-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(!is_age_prefix(b""));
        assert!(!is_age_prefix(b"PK\x03\x04"));
        let (id, _) = x25519();
        assert!(matches!(
            decrypt_stream(&b""[..], io::sink(), &id),
            Err(VaultError::Empty { .. })
        ));
        assert!(matches!(
            decrypt_stream(&b"hello world"[..], io::sink(), &id),
            Err(VaultError::NotAge { .. })
        ));
        assert!(check_age_header(&b"age-encryption.org/v1\n-> X25519 bad\n"[..], "t").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]

        /// Arbitrary input never panics the parser and is never accepted.
        #[test]
        fn arbitrary_bytes_are_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let (id, _) = x25519();
            proptest::prop_assert!(decrypt_stream(&bytes[..], io::sink(), &id).is_err());
            let mut with_magic = b"age-encryption.org/v1\n".to_vec();
            with_magic.extend_from_slice(&bytes);
            proptest::prop_assert!(decrypt_stream(&with_magic[..], io::sink(), &id).is_err());
        }

        /// Any single flipped bit anywhere in a ciphertext is detected.
        #[test]
        fn any_bit_flip_is_detected(len in 0usize..200_000, pos in proptest::num::usize::ANY, bit in 0u8..8) {
            let (id, r) = x25519();
            let mut ct = Vec::new();
            encrypt_stream(&vec![5u8; len][..], &mut ct, &[r]).unwrap();
            let pos = pos % ct.len();
            ct[pos] ^= 1 << bit;
            proptest::prop_assert!(decrypt_stream(&ct[..], io::sink(), &id).is_err());
        }
    }

    #[test]
    fn wrong_key_and_tamper_are_classified() {
        let (_, r) = x25519();
        let (other, _) = x25519();
        let mut ct = Vec::new();
        encrypt_stream(&[7u8; 100_000][..], &mut ct, std::slice::from_ref(&r)).unwrap();
        assert!(matches!(
            decrypt_stream(&ct[..], io::sink(), &other),
            Err(VaultError::WrongKey { .. })
        ));
        let (id, r) = x25519();
        let mut ct = Vec::new();
        encrypt_stream(&[7u8; 100_000][..], &mut ct, &[r]).unwrap();
        let mut bad = ct.clone();
        let last = bad.len() - 10;
        bad[last] ^= 1;
        assert!(matches!(
            decrypt_stream(&bad[..], io::sink(), &id),
            Err(VaultError::BadPayload { .. })
        ));
        // Cut exactly after the first full chunk: the stream ends before its
        // final chunk.
        let header_end = ct.windows(4).position(|w| w == b"\n---").unwrap();
        let mac_end = header_end
            + ct[header_end + 1..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap()
            + 2;
        let cut = mac_end + 16 + 64 * 1024 + 16;
        assert!(matches!(
            decrypt_stream(&ct[..cut], io::sink(), &id),
            Err(VaultError::Truncated { .. })
        ));
    }
}
