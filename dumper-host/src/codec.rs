//! Compressing dumps as stored, and reading back any stored format.
//!
//! A dump is cut into members of [`MEMBER`] bytes, each compressed on its own — a zstd frame or a gzip
//! member — so several compress at once on the blocking pool while the tool keeps writing. Both formats
//! define a file as a sequence of those: `zstd -d`, `gunzip` and every library read the whole file.
//! The reader tells the format from the first bytes, so a backup restores whatever its policy says now;
//! an encrypted backup (an age file around one of those) is decrypted first with the host's identities.

use std::io::Write as _;

use dilux_domain::compression::{Compression, StoredFormat};
use dilux_domain::encryption::{is_encrypted, AGE_MAGIC};
use flate2::write::{GzEncoder, MultiGzDecoder};
use zstd::stream::raw::{Decoder as ZstdDecoder, InBuffer, Operation as _, OutBuffer};

use crate::crypt::{Keys, Opener};

/// Input bytes per member: large enough that a member loses little to starting without the previous
/// one's history (zstd level 3 looks 2 MiB back at most), small enough that a few in flight stay cheap.
pub const MEMBER: usize = 4 << 20;

/// One member: a complete zstd frame (with its checksum) or gzip member. Runs for tens of milliseconds:
/// call it from the blocking pool.
pub fn compress(c: Compression, data: &[u8]) -> std::io::Result<Vec<u8>> {
    match c {
        Compression::Zstd { level } => {
            let mut z = zstd::bulk::Compressor::new(level as i32)?;
            z.include_checksum(true)?;
            z.compress(data)
        }
        Compression::Gzip { level } => {
            let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 3), flate2::Compression::new(level));
            gz.write_all(data)?;
            gz.finish()
        }
    }
}

/// Stored bytes in, dump bytes out, a bounded piece at a time whatever the compression ratio: `push` some
/// stored bytes, then `pull` until it answers `None`; at the end, `end`, `pull` the rest, and `finish`
/// says whether the last member was whole.
pub struct Decoder<'k> {
    state: State<'k>,
    input: Vec<u8>,
    at: usize,
    keys: &'k Keys,
}

enum State<'k> {
    /// Not enough bytes yet to tell the format.
    Sniffing,
    /// An age file: its plaintext goes through a decoder of its own.
    Encrypted {
        opener: Opener<'k>,
        inner: Box<Decoder<'k>>,
    },
    Gzip(Box<MultiGzDecoder<Vec<u8>>>),
    Zstd {
        d: ZstdDecoder<'static>,
        frame_done: bool,
        /// The last call filled its output: the decoder may hold more even with no input left.
        flushing: bool,
    },
}

/// About what a `pull` answers: zstd at most this, gzip this and at most one step's output more.
const PIECE: usize = 1 << 20;
/// Compressed bytes given to gzip at once: at most about 1 000 times that comes out of them.
const GZIP_STEP: usize = 2 << 10;

static NO_KEYS: Keys = Keys::EMPTY;

impl Default for Decoder<'_> {
    fn default() -> Self {
        Decoder::new(&NO_KEYS)
    }
}

impl<'k> Decoder<'k> {
    /// A decoder that decrypts encrypted backups with `keys`.
    pub fn new(keys: &'k Keys) -> Self {
        Decoder { state: State::Sniffing, input: Vec::new(), at: 0, keys }
    }

    pub fn push(&mut self, stored: &[u8]) -> Result<(), String> {
        if let State::Encrypted { opener, .. } = &mut self.state {
            return opener.push(stored);
        }
        self.input.drain(..self.at);
        self.at = 0;
        self.input.extend_from_slice(stored);
        let head = &self.input[..self.input.len().min(AGE_MAGIC.len())];
        if matches!(self.state, State::Sniffing) && AGE_MAGIC.starts_with(head) && head.len() < AGE_MAGIC.len() {
            // Perhaps an age file: wait for the whole magic.
            return Ok(());
        }
        if matches!(self.state, State::Sniffing) && is_encrypted(&self.input) {
            let mut opener = Opener::new(self.keys);
            opener.push(&std::mem::take(&mut self.input))?;
            // The plaintext is a compressed dump itself, never another age file.
            let inner = Box::new(Decoder::new(&NO_KEYS));
            self.state = State::Encrypted { opener, inner };
            return Ok(());
        }
        if matches!(self.state, State::Sniffing) && self.input.len() >= 4 {
            self.state = match StoredFormat::sniff(&self.input) {
                Some(StoredFormat::Gzip) => State::Gzip(Box::new(MultiGzDecoder::new(Vec::new()))),
                Some(StoredFormat::Zstd) => State::Zstd {
                    d: ZstdDecoder::new().map_err(|e| e.to_string())?,
                    frame_done: false,
                    flushing: false,
                },
                None => return Err("it is neither zstd nor gzip (its first bytes are not either's)".into()),
            };
        }
        Ok(())
    }

    /// After the last `push`: the input has ended (an age file's last chunk is only known then); `pull`
    /// what remains.
    pub fn end(&mut self) {
        if let State::Encrypted { opener, .. } = &mut self.state {
            opener.end();
        }
    }

    /// The next decoded piece, or `None` when everything pushed so far is decoded.
    pub fn pull(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            let rest = &self.input[self.at..];
            match &mut self.state {
                State::Sniffing => return Ok(None),
                State::Encrypted { opener, inner } => {
                    if let Some(out) = inner.pull()? {
                        return Ok(Some(out));
                    }
                    match opener.pull()? {
                        Some(plain) => inner.push(&plain)?,
                        None => return Ok(None),
                    }
                }
                State::Gzip(gz) => {
                    // Pieces of about PIECE bytes: fewer, larger writes to the client.
                    if rest.is_empty() || gz.get_ref().len() >= PIECE {
                        let out = std::mem::take(gz.get_mut());
                        return Ok((!out.is_empty()).then_some(out));
                    }
                    let step = &rest[..rest.len().min(GZIP_STEP)];
                    gz.write_all(step).map_err(|e| e.to_string())?;
                    self.at += step.len();
                }
                State::Zstd { d, frame_done, flushing } => {
                    // zstd refuses calls that can make no progress.
                    if rest.is_empty() && !*flushing {
                        return Ok(None);
                    }
                    let mut out = Vec::with_capacity(PIECE);
                    let (hint, taken, full) = {
                        let mut src = InBuffer::around(rest);
                        let mut dst = OutBuffer::around(&mut out);
                        let hint = d.run(&mut src, &mut dst).map_err(|e| e.to_string())?;
                        (hint, src.pos(), dst.pos() == dst.capacity())
                    };
                    // A call that moved nothing answers for the next frame's header: it says nothing of this one.
                    if taken > 0 || !out.is_empty() {
                        *frame_done = hint == 0;
                    }
                    self.at += taken;
                    *flushing = full;
                    if !out.is_empty() {
                        return Ok(Some(out));
                    }
                    // Nothing came out: all input taken (a frame header, say), or the end.
                    if self.at == self.input.len() && !full {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// After the last `push` and `pull`: what remains, or why the stored bytes stop mid-member.
    pub fn finish(&mut self) -> Result<Vec<u8>, String> {
        match &mut self.state {
            State::Encrypted { inner, .. } => inner.finish(),
            State::Sniffing if self.input.is_empty() => Err("it is empty".into()),
            State::Sniffing => Err("it is too short to be a backup".into()),
            // gzip's trailer (CRC-32 and length) catches a truncated or damaged member.
            State::Gzip(gz) => gz.try_finish().map(|()| std::mem::take(gz.get_mut())).map_err(|e| e.to_string()),
            State::Zstd { frame_done: true, .. } => Ok(Vec::new()),
            State::Zstd { frame_done: false, .. } => Err("its last zstd frame is incomplete".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dump-like bytes: compressible, not trivially.
    fn sample(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let mut i = 0u64;
        while out.len() < n {
            out.extend_from_slice(format!("INSERT INTO t VALUES ({i}, 'row {}');\n", i * 7919 % 10007).as_bytes());
            i += 1;
        }
        out.truncate(n);
        out
    }

    fn stored(c: Compression, dump: &[u8]) -> Vec<u8> {
        dump.chunks(MEMBER / 8).flat_map(|m| compress(c, m).unwrap()).collect()
    }

    fn decode(stored: &[u8], push: usize) -> Result<Vec<u8>, String> {
        decode_with(&Keys::default(), stored, push)
    }

    fn decode_with(keys: &Keys, stored: &[u8], push: usize) -> Result<Vec<u8>, String> {
        let mut d = Decoder::new(keys);
        let mut out = Vec::new();
        // zstd writes into a piece of PIECE bytes; gzip stops once a piece reached PIECE, after inflating at
        // most GZIP_STEP bytes, which deflate's 1032:1 limit bounds.
        let bound = match StoredFormat::sniff(stored) {
            Some(StoredFormat::Zstd) => PIECE,
            // gzip, or either inside age.
            _ => PIECE + 1032 * GZIP_STEP,
        };
        let mut take = |d: &mut Decoder| -> Result<(), String> {
            while let Some(o) = d.pull()? {
                assert!(o.len() <= bound, "a piece is bounded by {bound}, got {}", o.len());
                out.extend(o);
            }
            Ok(())
        };
        for piece in stored.chunks(push) {
            d.push(piece)?;
            take(&mut d)?;
        }
        d.end();
        take(&mut d)?;
        out.extend(d.finish()?);
        Ok(out)
    }

    #[test]
    fn an_encrypted_backup_decodes_with_the_identity_only() {
        let id = age::x25519::Identity::generate();
        let to = [id.to_public()];
        let keys = Keys::from_identities(vec![id]);
        let dump = sample(2 << 20);
        for c in [Compression::Zstd { level: 3 }, Compression::Gzip { level: 6 }] {
            // Sealed member by member, as the dump pipeline does.
            let mut sealer = crate::crypt::Sealer::new(&to).unwrap();
            let mut file = Vec::new();
            for m in dump.chunks(MEMBER / 8) {
                file.extend(sealer.push(&compress(c, m).unwrap()).unwrap());
            }
            file.extend(sealer.finish().unwrap());
            for push in [1, 5, 64 << 10, file.len()] {
                assert_eq!(decode_with(&keys, &file, push).unwrap(), dump, "{c:?} pushed {push} at a time");
            }
            assert!(decode(&file, 64 << 10).unwrap_err().contains("no identity"), "{c:?} without the identity");
            assert!(decode_with(&keys, &file[..file.len() - 20], 64 << 10).is_err(), "{c:?} cut");
        }
        // The first bytes of "age-…" wait for the whole magic; anything else is told at once.
        assert!(decode(b"age-", 1).unwrap_err().contains("too short"));
        assert!(decode(b"CREATE TABLE t (id int);", 64).unwrap_err().contains("neither zstd nor gzip"));
    }

    #[test]
    fn members_concatenate_into_one_readable_file() {
        let dump = sample(3 << 20);
        for c in [Compression::Zstd { level: 3 }, Compression::Gzip { level: 6 }, Compression::Gzip { level: 1 }] {
            let file = stored(c, &dump);
            assert!(file.len() < dump.len() / 3, "{c:?} compresses: {}", file.len());
            for push in [1, 3, 64 << 10, file.len()] {
                assert_eq!(decode(&file, push).unwrap(), dump, "{c:?} pushed {push} at a time");
            }
        }
        // What the standard readers see: one stream.
        let zst = stored(Compression::Zstd { level: 3 }, &dump);
        assert_eq!(zstd::stream::decode_all(&zst[..]).unwrap(), dump);
        let gz = stored(Compression::Gzip { level: 6 }, &dump);
        let mut read = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&gz[..]), &mut read).unwrap();
        assert_eq!(read, dump);
    }

    #[test]
    fn output_stays_bounded_however_well_it_compresses() {
        let zeros = vec![0u8; 64 << 20];
        for c in [Compression::Zstd { level: 3 }, Compression::Gzip { level: 9 }] {
            let file = compress(c, &zeros).unwrap();
            assert!(file.len() < 1 << 20, "{c:?}: {}", file.len());
            assert_eq!(decode(&file, 64 << 10).unwrap().len(), zeros.len(), "{c:?}");
        }
    }

    #[test]
    fn a_cut_or_foreign_file_is_refused() {
        let dump = sample(1 << 20);
        for c in [Compression::Zstd { level: 3 }, Compression::Gzip { level: 6 }] {
            let file = stored(c, &dump);
            for cut in [file.len() - 1, file.len() / 2, 10] {
                assert!(decode(&file[..cut], 64 << 10).is_err(), "{c:?} cut at {cut} of {}", file.len());
            }
            let mut flipped = file.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x55;
            assert!(decode(&flipped, 64 << 10).is_err(), "{c:?} with a flipped byte");
        }
        assert!(decode(b"CREATE TABLE t (id int);", 64).unwrap_err().contains("neither zstd nor gzip"));
        assert!(decode(b"", 64).unwrap_err().contains("empty"));
    }
}
