//! Client-side encryption of backups with age (<https://age-encryption.org/v1>): a policy names X25519
//! recipients; the dump pipeline encrypts the compressed stream to them, and restores decrypt it with the
//! identities given to this host. The stored file is a standard age file: `age -d -i key.txt` reads it.
//!
//! Identities come from `DILUX_AGE_IDENTITY_FILE` (a file of `AGE-SECRET-KEY-1…` lines, as `age-keygen`
//! writes: several lines let old keys keep restoring old backups) or `DILUX_AGE_IDENTITY` (the same text, for
//! a secret synced from Key Vault into the environment). They are never logged, and no child process sees
//! them: the tools start from an empty environment.

use std::io::{Read, Write as _};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};

use age::secrecy::ExposeSecret as _;
use age::x25519;

/// The host's age identities, loaded once at start.
#[derive(Default)]
pub struct Keys {
    identities: Vec<x25519::Identity>,
}

/// Only the public halves print.
impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("recipients", &self.recipients()).finish()
    }
}

/// A header longer than this is not a backup's (each recipient adds about 100 bytes).
const MAX_HEADER: usize = 64 << 10;
/// Plaintext handed on at once: one age chunk.
const PIECE: usize = 64 << 10;

impl Keys {
    pub const EMPTY: Keys = Keys { identities: Vec::new() };

    /// Reads `DILUX_AGE_IDENTITY_FILE` and `DILUX_AGE_IDENTITY` through `var`; neither set: no identities
    /// (encrypted backups are then neither made nor restored here). The error never quotes the file.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Keys, String> {
        let mut identities = Vec::new();
        if let Some(path) = var("DILUX_AGE_IDENTITY_FILE").filter(|p| !p.is_empty()) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("DILUX_AGE_IDENTITY_FILE: cannot read {path}: {e}"))?;
            identities.extend(parse(&text, "DILUX_AGE_IDENTITY_FILE")?);
        }
        if let Some(text) = var("DILUX_AGE_IDENTITY").filter(|t| !t.trim().is_empty()) {
            identities.extend(parse(&text, "DILUX_AGE_IDENTITY")?);
        }
        Ok(Keys { identities })
    }

    pub fn from_identities(identities: Vec<x25519::Identity>) -> Keys {
        Keys { identities }
    }

    /// The public recipients of the identities, as a policy names them.
    pub fn recipients(&self) -> Vec<String> {
        self.identities.iter().map(|i| i.to_public().to_string()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// `list` parsed for encryption, refused unless one of them is this host's: a backup the product
    /// cannot decrypt would fail only on the day someone needs it.
    pub fn recipients_for(&self, list: &[String]) -> Result<Vec<x25519::Recipient>, String> {
        let parsed = list
            .iter()
            .enumerate()
            .map(|(i, r)| {
                x25519::Recipient::from_str(r)
                    .map_err(|_| format!("recipient {} (`{r}`) is not an age X25519 key", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mine = self.recipients();
        if !list.iter().any(|r| mine.contains(r)) {
            return Err(match mine.is_empty() {
                true => "the policy encrypts backups, but this dumper-host has no age identity to restore them with: \
                         give it the identity of one of the policy's recipients (DILUX_AGE_IDENTITY_FILE)"
                    .into(),
                false => format!(
                    "none of the policy's recipients is this dumper-host's ({}), so the product could not restore \
                     the backup: add that recipient to the policy, or give the dumper-host a matching identity",
                    mine.join(", ")
                ),
            });
        }
        Ok(parsed)
    }

    /// A small age file (a manifest) decrypted whole.
    pub fn open_small(&self, stored: &[u8]) -> Result<Vec<u8>, String> {
        let mut o = Opener::new(self);
        o.push(stored)?;
        o.end();
        let mut out = Vec::new();
        while let Some(p) = o.pull()? {
            out.extend(p);
        }
        Ok(out)
    }

    fn identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.identities.iter().map(|i| i as &dyn age::Identity)
    }
}

/// Identities from `age-keygen` output: `#` comments and blank lines skipped, every other line a key.
fn parse(text: &str, source: &str) -> Result<Vec<x25519::Identity>, String> {
    let keys: Vec<_> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(n, l)| {
            x25519::Identity::from_str(l.trim())
                .map_err(|_| format!("{source}: line {} is not an age identity (AGE-SECRET-KEY-1…)", n + 1))
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(format!("{source} holds no age identity (AGE-SECRET-KEY-1… lines)"));
    }
    Ok(keys)
}

/// A small file (a manifest) encrypted whole.
pub fn seal_small(to: &[x25519::Recipient], data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = Sealer::new(to)?;
    let mut out = s.push(data)?;
    out.extend(s.finish()?);
    Ok(out)
}

/// Where the age writer puts ciphertext until the pipeline takes it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// Encrypts a stream in order: `push` plaintext, get the ciphertext ready so far (the header first);
/// `finish` gives the last chunk. The age writer holds at most one 64 KiB chunk back.
pub struct Sealer {
    writer: age::stream::StreamWriter<Shared>,
    out: Shared,
}

impl Sealer {
    pub fn new(to: &[x25519::Recipient]) -> std::io::Result<Sealer> {
        let e = age::Encryptor::with_recipients(to.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let out = Shared::default();
        let writer = e.wrap_output(out.clone())?;
        Ok(Sealer { writer, out })
    }

    pub fn push(&mut self, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        self.writer.write_all(plain)?;
        Ok(self.out.take())
    }

    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        self.writer.finish()?;
        Ok(self.out.take())
    }
}

/// The bytes pushed into an [`Opener`] and not yet read by the age reader.
#[derive(Clone, Default)]
struct Feed(Arc<Mutex<FeedState>>);

#[derive(Default)]
struct FeedState {
    bytes: Vec<u8>,
    at: usize,
    ended: bool,
}

/// Runs dry with `WouldBlock` until the input has ended: the age reader keeps its place and is asked
/// again after the next push (only the end of input is an end of file to it).
impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut f = self.0.lock().expect("not poisoned");
        let rest = f.bytes.len() - f.at;
        if rest == 0 {
            return if f.ended { Ok(0) } else { Err(std::io::ErrorKind::WouldBlock.into()) };
        }
        let n = rest.min(buf.len());
        buf[..n].copy_from_slice(&f.bytes[f.at..f.at + n]);
        f.at += n;
        // Compact now and then, so the buffer holds about what was pushed and not yet read.
        if f.at >= 1 << 20 || f.at == f.bytes.len() {
            let at = f.at;
            f.bytes.drain(..at);
            f.at = 0;
        }
        Ok(n)
    }
}

impl Feed {
    fn push(&self, more: &[u8]) {
        self.0.lock().expect("not poisoned").bytes.extend_from_slice(more);
    }

    fn end(&self) {
        self.0.lock().expect("not poisoned").ended = true;
    }
}

/// Decrypts an age stream pushed a piece at a time, like the codec's decoder: `push` stored bytes,
/// `pull` until `None`, `end` once everything is pushed and `pull` the rest. A truncated or altered file
/// fails (each 64 KiB chunk is authenticated, and the last one is marked).
pub struct Opener<'k> {
    keys: &'k Keys,
    state: OpenState,
}

enum OpenState {
    /// The header so far; parsed again as bytes arrive (it is small).
    Header {
        bytes: Vec<u8>,
        ended: bool,
    },
    Body {
        reader: Box<age::stream::StreamReader<Feed>>,
        feed: Feed,
    },
}

impl<'k> Opener<'k> {
    pub fn new(keys: &'k Keys) -> Self {
        Opener { keys, state: OpenState::Header { bytes: Vec::new(), ended: false } }
    }

    pub fn push(&mut self, stored: &[u8]) -> Result<(), String> {
        match &mut self.state {
            OpenState::Header { bytes, .. } => {
                bytes.extend_from_slice(stored);
                self.try_header()
            }
            OpenState::Body { feed, .. } => {
                feed.push(stored);
                Ok(())
            }
        }
    }

    pub fn end(&mut self) {
        match &mut self.state {
            OpenState::Header { ended, .. } => *ended = true,
            OpenState::Body { feed, .. } => feed.end(),
        }
    }

    /// Once the header and the payload's nonce are in, unwraps the file key with the host's identities.
    fn try_header(&mut self) -> Result<(), String> {
        let OpenState::Header { bytes, ended } = &self.state else { return Ok(()) };
        if self.keys.is_empty() {
            return Err("it is encrypted (age), and this dumper-host has no identity to decrypt it: give it the \
                        identity of one of the backup's recipients (DILUX_AGE_IDENTITY_FILE)"
                .into());
        }
        let feed = Feed::default();
        feed.push(bytes);
        if *ended {
            feed.end();
        }
        let too_long = bytes.len() > MAX_HEADER;
        match age::Decryptor::new(feed.clone()) {
            Err(age::DecryptError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock && !too_long => Ok(()),
            Err(age::DecryptError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err("its age header is longer than any backup's".into())
            }
            Err(age::DecryptError::Io(_)) => Err("it ends inside its age header".into()),
            Err(e) => Err(format!("its age header is unreadable: {e}")),
            Ok(d) => match d.decrypt(self.keys.identities()) {
                Ok(reader) => {
                    self.state = OpenState::Body { reader: Box::new(reader), feed };
                    Ok(())
                }
                Err(age::DecryptError::NoMatchingKeys) => Err(format!(
                    "it is encrypted to other recipients than this dumper-host's ({}): give the dumper-host the \
                     identity of one of them",
                    self.keys.recipients().join(", ")
                )),
                Err(e) => Err(format!("it could not be decrypted: {e}")),
            },
        }
    }

    /// The next decrypted piece, or `None` when everything pushed so far is decrypted.
    pub fn pull(&mut self) -> Result<Option<Vec<u8>>, String> {
        if let OpenState::Header { ended: true, .. } = self.state {
            self.try_header()?;
            if let OpenState::Header { bytes, .. } = &self.state {
                return Err(if bytes.is_empty() {
                    "it is empty".into()
                } else {
                    "it ends inside its age header".into()
                });
            }
        }
        let OpenState::Body { reader, .. } = &mut self.state else { return Ok(None) };
        let mut out = vec![0u8; PIECE];
        let mut n = 0;
        while n < out.len() {
            match reader.read(&mut out[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err("its age stream is truncated".into())
                }
                Err(e) => return Err(format!("its age stream is damaged ({e})")),
            }
        }
        out.truncate(n);
        Ok((n > 0).then_some(out))
    }
}

/// A fresh identity as `age-keygen` writes it (for tests and `dilux-restore --new-identity`).
pub fn generate() -> (String, String) {
    let id = x25519::Identity::generate();
    (id.to_string().expose_secret().to_string(), id.to_public().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (Keys, x25519::Recipient) {
        let id = x25519::Identity::generate();
        let r = id.to_public();
        (Keys::from_identities(vec![id]), r)
    }

    fn open(keys: &Keys, stored: &[u8], push: usize) -> Result<Vec<u8>, String> {
        let mut o = Opener::new(keys);
        let mut out = Vec::new();
        for piece in stored.chunks(push) {
            o.push(piece)?;
            while let Some(p) = o.pull()? {
                assert!(p.len() <= PIECE);
                out.extend(p);
            }
        }
        o.end();
        while let Some(p) = o.pull()? {
            out.extend(p);
        }
        Ok(out)
    }

    fn sealed(to: &[x25519::Recipient], data: &[u8], push: usize) -> Vec<u8> {
        let mut s = Sealer::new(to).unwrap();
        let mut out = Vec::new();
        for piece in data.chunks(push.max(1)) {
            out.extend(s.push(piece).unwrap());
        }
        out.extend(s.finish().unwrap());
        out
    }

    #[test]
    fn a_stream_round_trips_whatever_the_pieces() {
        let (k, r) = keys();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for len in [0, 1, 65_536, 65_537, 131_072, data.len()] {
            let file = sealed(std::slice::from_ref(&r), &data[..len], 10_000);
            assert!(dilux_domain::encryption::is_encrypted(&file));
            for push in [1, 7, 65_552, file.len().max(1)] {
                assert_eq!(open(&k, &file, push).unwrap(), &data[..len], "{len} bytes pushed {push} at a time");
            }
        }
        assert_eq!(k.open_small(&seal_small(&[r], b"{}").unwrap()).unwrap(), b"{}");
    }

    #[test]
    fn a_cut_altered_or_foreign_file_is_refused() {
        let (k, r) = keys();
        let data = vec![42u8; 200_000];
        let file = sealed(std::slice::from_ref(&r), &data, 4096);
        for cut in [file.len() - 1, 65_536 + 200, 100, 0] {
            assert!(open(&k, &file[..cut], 4096).is_err(), "cut at {cut}");
        }
        let mut flipped = file.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        assert!(open(&k, &flipped, 4096).unwrap_err().contains("damaged"));
        let (other, _) = keys();
        assert!(open(&other, &file, 4096).unwrap_err().contains("other recipients"));
        assert!(open(&Keys::default(), &file, 4096).unwrap_err().contains("no identity"));
    }

    #[test]
    fn identities_load_from_keygen_output_and_never_print() {
        let (secret, public) = generate();
        let file = format!("# created: today\n# public key: {public}\n{secret}\n");
        let dir = std::env::temp_dir().join(format!("dilux-age-{}", std::process::id()));
        std::fs::write(&dir, &file).unwrap();
        let path = dir.to_string_lossy().to_string();
        let k = Keys::from_lookup(|n| (n == "DILUX_AGE_IDENTITY_FILE").then(|| path.clone())).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(k.recipients(), vec![public.clone()]);
        assert!(!format!("{k:?}").contains(&secret[15..]), "Debug shows only the public key");
        let bad = Keys::from_lookup(|n| (n == "DILUX_AGE_IDENTITY").then(|| format!("{secret}x\n"))).unwrap_err();
        assert!(bad.contains("line 1") && !bad.contains(&secret[15..]), "{bad}");
        assert!(k.recipients_for(std::slice::from_ref(&public)).is_ok());
        let (_, stranger) = generate();
        let refused = k.recipients_for(std::slice::from_ref(&stranger)).unwrap_err();
        assert!(refused.contains("none of the policy's recipients"), "{refused}");
        assert!(Keys::default().recipients_for(&[stranger]).unwrap_err().contains("no age identity"));
    }
}
