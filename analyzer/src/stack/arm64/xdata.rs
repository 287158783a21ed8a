//! An ARM64 `.xdata` record: the header word (function length, version, X, E, epilog count,
//! code words; an extension word when both counts are 0), the epilog scopes (unless E says
//! the one epilog is described in the header), and the unwind-code bytes. The exception
//! handler after them is not needed to unwind and is not read.

use super::super::image::ImageRead;
use super::super::UnwindError;

/// Where the epilogs are and which codes describe them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Epilogs {
    /// E = 1: a single epilog ending the function; its codes start at byte `index`.
    AtEnd { index: u32 },
    /// E = 0: the epilog scopes, in address order.
    Scopes(Vec<EpilogScope>),
}

/// One epilog scope word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpilogScope {
    /// The epilog's first instruction, in instructions from the function's start.
    pub start: u32,
    /// The byte index of its first unwind code.
    pub index: u32,
}

/// One `.xdata` record (or the record the packed form stands for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xdata {
    /// In instructions.
    pub function_length: u32,
    /// X: an exception handler follows the codes.
    pub exception_data: bool,
    pub epilogs: Epilogs,
    /// The unwind codes, `4 * code words` bytes (padding included).
    pub codes: Vec<u8>,
}

fn read_u32(img: &mut dyn ImageRead, rva: u32) -> Result<u32, UnwindError> {
    let mut b = [0u8; 4];
    img.read_rva(rva, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

impl Xdata {
    /// Reads the record at `rva`.
    pub fn read(img: &mut dyn ImageRead, rva: u32) -> Result<Xdata, UnwindError> {
        let bad = |reason| UnwindError::Malformed { rva, reason };
        let past = || bad(".xdata record reaches past 4 GiB");
        let h = read_u32(img, rva)?;
        if h >> 18 & 3 != 0 {
            return Err(bad(".xdata version is not 0"));
        }
        let exception_data = h >> 20 & 1 == 1;
        let in_header = h >> 21 & 1 == 1;
        let (mut epilog_count, mut code_words) = (h >> 22 & 0x1F, h >> 27);
        let mut at = rva.checked_add(4).ok_or_else(past)?;
        if epilog_count == 0 && code_words == 0 {
            let ext = read_u32(img, at)?;
            epilog_count = ext & 0xFFFF;
            code_words = ext >> 16 & 0xFF;
            at = at.checked_add(4).ok_or_else(past)?;
        }
        let epilogs = if in_header {
            Epilogs::AtEnd {
                index: epilog_count,
            }
        } else {
            let mut words = vec![0u8; 4 * epilog_count as usize];
            img.read_rva(at, &mut words)?;
            at = at.checked_add(4 * epilog_count).ok_or_else(past)?;
            let scopes = words
                .chunks_exact(4)
                .map(|w| {
                    let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    EpilogScope {
                        start: w & 0x3FFFF,
                        index: w >> 22,
                    }
                })
                .collect();
            Epilogs::Scopes(scopes)
        };
        let mut codes = vec![0u8; 4 * code_words as usize];
        img.read_rva(at, &mut codes)?;
        let x = Xdata {
            function_length: h & 0x3FFFF,
            exception_data,
            epilogs,
            codes,
        };
        x.check().map_err(bad)?;
        Ok(x)
    }

    /// Every epilog's code index must be inside the code array.
    pub fn check(&self) -> Result<(), &'static str> {
        let len = self.codes.len() as u32;
        let inside = match &self.epilogs {
            Epilogs::AtEnd { index } => *index <= len,
            Epilogs::Scopes(s) => s.iter().all(|e| e.index <= len),
        };
        if inside {
            Ok(())
        } else {
            Err("an epilog's first unwind code is past the code array")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::image::BytesImage;

    fn header(len: u32, x: bool, e: bool, epilogs: u32, words: u32) -> u32 {
        len | u32::from(x) << 20 | u32::from(e) << 21 | epilogs << 22 | words << 27
    }

    #[test]
    fn header_scopes_and_codes() {
        let mut b = vec![0u8; 0x100];
        let w =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        // 0x30 instructions, two epilog scopes, one code word.
        w(&mut b, 0x10, header(0x30, true, false, 2, 1));
        w(&mut b, 0x14, 0x20 | 1 << 22);
        w(&mut b, 0x18, 0x2C | 3 << 22);
        b[0x1C..0x20].copy_from_slice(&[0xE1, 0x81, 0xE4, 0xE3]);
        let x = Xdata::read(&mut BytesImage(&b), 0x10).unwrap();
        assert_eq!(x.function_length, 0x30);
        assert!(x.exception_data);
        assert_eq!(
            x.epilogs,
            Epilogs::Scopes(vec![
                EpilogScope {
                    start: 0x20,
                    index: 1
                },
                EpilogScope {
                    start: 0x2C,
                    index: 3
                },
            ])
        );
        assert_eq!(x.codes, [0xE1, 0x81, 0xE4, 0xE3]);

        // E = 1: the count field is the epilog's code index.
        w(&mut b, 0x40, header(8, false, true, 1, 1));
        b[0x44..0x48].copy_from_slice(&[0xE1, 0x81, 0xE4, 0xE4]);
        let x = Xdata::read(&mut BytesImage(&b), 0x40).unwrap();
        assert_eq!(x.epilogs, Epilogs::AtEnd { index: 1 });

        // Both counts 0: the extension word (3 scopes, 2 code words).
        w(&mut b, 0x60, header(0x100, false, false, 0, 0));
        w(&mut b, 0x64, 3 | 2 << 16);
        let x = Xdata::read(&mut BytesImage(&b), 0x60).unwrap();
        assert!(matches!(&x.epilogs, Epilogs::Scopes(s) if s.len() == 3));
        assert_eq!(x.codes.len(), 8);
    }

    #[test]
    fn hostile_records_are_errors() {
        let mut b = vec![0u8; 0x40];
        b[0..4].copy_from_slice(&(1u32 << 18).to_le_bytes());
        assert!(Xdata::read(&mut BytesImage(&b), 0).is_err(), "version 1");
        // 31 code words, past the image.
        b[0..4].copy_from_slice(&header(4, false, true, 0, 31).to_le_bytes());
        assert!(Xdata::read(&mut BytesImage(&b), 0).is_err());
        // The epilog index past the one code word.
        b[0..4].copy_from_slice(&header(4, false, true, 9, 1).to_le_bytes());
        assert!(Xdata::read(&mut BytesImage(&b), 0).is_err());
        assert!(Xdata::read(&mut BytesImage(&b), u32::MAX - 2).is_err());
    }
}
