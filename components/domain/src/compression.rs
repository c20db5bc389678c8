//! How a backup's dump is compressed as stored: chosen per policy, recorded on each backup, and told apart
//! by readers from the stored bytes' first ones, so every backup restores whatever its policy says now.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// `{"algorithm": "zstd", "level": 3}` or `{"algorithm": "gzip", "level": 6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
pub enum Compression {
    /// zstd, level 1–19. Level 3 (the default) stores about what gzip -6 does, several times faster.
    Zstd {
        #[schemars(range(min = 1, max = 19))]
        level: u32,
    },
    /// gzip, level 1–9: for tools that read nothing else.
    Gzip {
        #[schemars(range(min = 1, max = 9))]
        level: u32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd { level: 3 }
    }
}

/// The first bytes of a zstd frame and of a gzip member.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl Compression {
    /// What backups made before policies chose had: every one of them is gzip level 6.
    pub const LEGACY: Compression = Compression::Gzip { level: 6 };

    pub fn level(self) -> u32 {
        match self {
            Compression::Zstd { level } | Compression::Gzip { level } => level,
        }
    }

    /// `zst` or `gz`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd { .. } => "zst",
            Compression::Gzip { .. } => "gz",
        }
    }

    /// The stored file's extension for a dump of `format`: `sql.zst`, `dump.gz`.
    pub fn extension(self, format: crate::format::DumpFormat) -> String {
        format!("{}.{}", format.stem(), self.suffix())
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Compression::Zstd { .. } => "application/zstd",
            Compression::Gzip { .. } => "application/gzip",
        }
    }

    pub fn algorithm(self) -> &'static str {
        match self {
            Compression::Zstd { .. } => "zstd",
            Compression::Gzip { .. } => "gzip",
        }
    }

    /// "zstd level 3".
    pub fn describe(self) -> String {
        format!("{} level {}", self.algorithm(), self.level())
    }

    /// `field` names the policy's field in the message.
    pub fn validate(self, field: &str) -> Result<(), FieldError> {
        let max = match self {
            Compression::Zstd { .. } => 19,
            Compression::Gzip { .. } => 9,
        };
        if !(1..=max).contains(&self.level()) {
            let message = format!("{} levels are 1 to {max}", self.algorithm());
            return Err(FieldError::new(format!("{field}.level"), message));
        }
        Ok(())
    }
}

/// A stored dump's format, from its first bytes; `None` for anything else (not a backup, or damaged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredFormat {
    Zstd,
    Gzip,
}

impl StoredFormat {
    /// Needs at least 4 bytes to answer zstd.
    pub fn sniff(first: &[u8]) -> Option<StoredFormat> {
        if first.starts_with(&ZSTD_MAGIC) {
            Some(StoredFormat::Zstd)
        } else if first.starts_with(&GZIP_MAGIC) {
            Some(StoredFormat::Gzip)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_name_an_algorithm_and_a_level() {
        let c: Compression = serde_json::from_str(r#"{"algorithm":"gzip","level":9}"#).unwrap();
        assert_eq!(c, Compression::Gzip { level: 9 });
        assert_eq!(serde_json::to_string(&Compression::default()).unwrap(), r#"{"algorithm":"zstd","level":3}"#);
        assert!(serde_json::from_str::<Compression>(r#"{"algorithm":"brotli","level":3}"#).is_err());
        assert!(serde_json::from_str::<Compression>(r#"{"algorithm":"zstd"}"#).is_err());
        let plain = crate::format::DumpFormat::Plain;
        assert_eq!((c.extension(plain).as_str(), c.content_type()), ("sql.gz", "application/gzip"));
        assert_eq!(Compression::default().extension(plain), "sql.zst");
        assert_eq!(Compression::default().extension(crate::format::DumpFormat::Custom), "dump.zst");
    }

    #[test]
    fn levels_are_checked_per_algorithm() {
        assert!(Compression::Zstd { level: 19 }.validate("compression").is_ok());
        let e = Compression::Gzip { level: 10 }.validate("compression").unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("compression.level", "gzip levels are 1 to 9"));
        assert!(Compression::Zstd { level: 0 }.validate("compression").is_err());
        assert!(Compression::Zstd { level: 20 }.validate("compression").is_err());
    }

    #[test]
    fn stored_bytes_say_their_format() {
        assert_eq!(StoredFormat::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0x04]), Some(StoredFormat::Zstd));
        assert_eq!(StoredFormat::sniff(&[0x1f, 0x8b, 8, 0]), Some(StoredFormat::Gzip));
        assert_eq!(StoredFormat::sniff(b"CREATE TABLE"), None);
        assert_eq!(StoredFormat::sniff(&[]), None);
    }
}
