//! PE images as the loader leaves them in memory: DOS and NT headers, section table, an export
//! directory (the kernel's names ntoskrnl.exe and exports the globals debuggers look up) and a
//! debug directory with the CodeView "RSDS" record that names the image's PDB.

use crate::space::Machine;
use crate::ForgeError;

pub struct Section {
    pub name: &'static str,
    pub rva: u32,
    pub size: u32,
    pub characteristics: u32,
}

pub const CODE: u32 = 0x6000_0020; // code, execute, read
pub const RDATA: u32 = 0x4000_0040; // initialised data, read
pub const DATA: u32 = 0xc800_0040; // initialised data, read, write, not paged
pub const DISCARD: u32 = 0xe200_0020; // INIT: code, discardable

/// The section layout of every forged driver image of `size` bytes (at least 16 KiB): code
/// in the first half, one page of read-only data (which holds the PE metadata: headers' tail,
/// debug directory, imports, at the returned `meta` RVA), writable data, and a last page of
/// discardable INIT code, as real drivers are laid out.
pub fn driver_sections(size: u32) -> (u32, Vec<Section>) {
    let meta = (size / 2) & !0xfff;
    let sections = vec![
        Section {
            name: ".text",
            rva: 0x1000,
            size: meta.saturating_sub(0x1000),
            characteristics: CODE,
        },
        Section {
            name: ".rdata",
            rva: meta,
            size: 0x1000,
            characteristics: RDATA,
        },
        Section {
            name: ".data",
            rva: meta + 0x1000,
            size: size.saturating_sub(meta + 0x2000),
            characteristics: DATA,
        },
        Section {
            name: "INIT",
            rva: size.saturating_sub(0x1000),
            size: 0x1000,
            characteristics: DISCARD,
        },
    ];
    (meta, sections)
}

pub struct PeImage<'a> {
    pub machine: u16,
    pub base: u64,
    pub size: u32,
    pub timestamp: u32,
    pub checksum: u32,
    pub entry_rva: u32,
    pub dll: bool,
    pub sections: Vec<Section>,
    /// RVA of a free, mapped area (at least 0x1000 bytes, inside a read-only section) for the
    /// debug directory, the CodeView record and the export directory.
    pub meta_rva: u32,
    pub export_name: Option<&'a str>,
    pub exports: Vec<(&'a str, u32)>,
    pub pdb_name: &'a str,
    pub guid: [u8; 16],
    pub age: u32,
    pub os_version: (u16, u16),
    /// Functions imported from ntoskrnl.exe with the address the loader bound them to; the
    /// import address table lies at [`iat_rva`].
    pub imports: Vec<(&'a str, u64)>,
}

/// Where the import directory and the import address table of an image are placed.
const IMPORT_DIR: u32 = 0x400;
const IMPORT_ILT: u32 = 0x440;
const IMPORT_IAT: u32 = 0x600;
const IMPORT_NAMES: u32 = 0x700;

/// RVA of the `index`th import address table slot of an image whose metadata is at `meta_rva`.
pub fn iat_rva(meta_rva: u32, index: usize, pe64: bool) -> u32 {
    meta_rva + IMPORT_IAT + (index as u32) * if pe64 { 8 } else { 4 }
}

fn put(buf: &mut Vec<u8>, off: usize, bytes: &[u8]) {
    if buf.len() < off + bytes.len() {
        buf.resize(off + bytes.len(), 0);
    }
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Writes the image's headers and metadata into already-mapped memory at `img.base`.
pub fn write_image(m: &mut Machine, img: &PeImage<'_>) -> Result<(), ForgeError> {
    let pe64 = img.machine == 0x8664;
    let lfanew = 0x100usize;
    let mut h = Vec::new();
    put(&mut h, 0, b"MZ");
    put(&mut h, 2, &0x90u16.to_le_bytes());
    put(&mut h, 4, &3u16.to_le_bytes());
    put(&mut h, 8, &4u16.to_le_bytes());
    put(&mut h, 0x18, &0x40u16.to_le_bytes());
    put(&mut h, 0x3c, &(lfanew as u32).to_le_bytes());
    put(
        &mut h,
        0x4e,
        b"This program cannot be run in DOS mode.\r\r\n$",
    );
    put(&mut h, lfanew, b"PE\0\0");

    let opt_size: u16 = if pe64 { 0xf0 } else { 0xe0 };
    let mut characteristics: u16 = if pe64 { 0x0022 } else { 0x0122 };
    if img.dll {
        characteristics |= 0x2000;
    }
    let coff = lfanew + 4;
    put(&mut h, coff, &img.machine.to_le_bytes());
    put(&mut h, coff + 2, &(img.sections.len() as u16).to_le_bytes());
    put(&mut h, coff + 4, &img.timestamp.to_le_bytes());
    put(&mut h, coff + 16, &opt_size.to_le_bytes());
    put(&mut h, coff + 18, &characteristics.to_le_bytes());

    let o = coff + 20;
    let code_size: u32 = img
        .sections
        .iter()
        .filter(|s| s.characteristics & 0x20 != 0)
        .map(|s| s.size)
        .sum();
    let data_size: u32 = img
        .sections
        .iter()
        .filter(|s| s.characteristics & 0x40 != 0)
        .map(|s| s.size)
        .sum();
    let base_of_code = img.sections.first().map(|s| s.rva).unwrap_or(0x1000);
    put(
        &mut h,
        o,
        &(if pe64 { 0x20bu16 } else { 0x10bu16 }).to_le_bytes(),
    );
    put(&mut h, o + 2, &[14, 0]);
    put(&mut h, o + 4, &code_size.to_le_bytes());
    put(&mut h, o + 8, &data_size.to_le_bytes());
    put(&mut h, o + 16, &img.entry_rva.to_le_bytes());
    put(&mut h, o + 20, &base_of_code.to_le_bytes());
    let (ver_major, ver_minor) = img.os_version;
    // Fields from SectionAlignment on sit 4 bytes later in PE32+ (8-byte ImageBase, no BaseOfData).
    let d = if pe64 {
        put(&mut h, o + 24, &img.base.to_le_bytes());
        o + 32
    } else {
        put(&mut h, o + 24, &img.meta_rva.to_le_bytes()); // BaseOfData
        put(&mut h, o + 28, &(img.base as u32).to_le_bytes());
        o + 32
    };
    put(&mut h, d, &0x1000u32.to_le_bytes()); // SectionAlignment
    put(&mut h, d + 4, &0x200u32.to_le_bytes()); // FileAlignment
    for (i, v) in [
        ver_major, ver_minor, ver_major, ver_minor, ver_major, ver_minor,
    ]
    .iter()
    .enumerate()
    {
        put(&mut h, d + 8 + 2 * i, &v.to_le_bytes());
    }
    put(&mut h, d + 24, &img.size.to_le_bytes()); // SizeOfImage
    put(&mut h, d + 28, &0x1000u32.to_le_bytes()); // SizeOfHeaders
    put(&mut h, d + 32, &img.checksum.to_le_bytes());
    put(&mut h, d + 36, &1u16.to_le_bytes()); // native subsystem
    put(
        &mut h,
        d + 38,
        &(if pe64 { 0x4160u16 } else { 0x4140u16 }).to_le_bytes(),
    );
    let dirs = if pe64 {
        for (i, v) in [0x80000u64, 0x2000, 0x100000, 0x1000].iter().enumerate() {
            put(&mut h, d + 40 + 8 * i, &v.to_le_bytes());
        }
        put(&mut h, d + 76, &16u32.to_le_bytes());
        d + 80
    } else {
        for (i, v) in [0x80000u32, 0x2000, 0x100000, 0x1000].iter().enumerate() {
            put(&mut h, d + 40 + 4 * i, &v.to_le_bytes());
        }
        put(&mut h, d + 60, &16u32.to_le_bytes());
        d + 64
    };

    // Metadata area: debug directory at +0, RSDS at +0x40, exports at +0x100.
    let mut meta = Vec::new();
    let rsds_rva = img.meta_rva + 0x40;
    let mut rsds = Vec::new();
    rsds.extend_from_slice(b"RSDS");
    rsds.extend_from_slice(&img.guid);
    rsds.extend_from_slice(&img.age.to_le_bytes());
    rsds.extend_from_slice(img.pdb_name.as_bytes());
    rsds.push(0);
    put(&mut meta, 0, &0u32.to_le_bytes());
    put(&mut meta, 4, &img.timestamp.to_le_bytes());
    put(&mut meta, 12, &2u32.to_le_bytes()); // IMAGE_DEBUG_TYPE_CODEVIEW
    put(&mut meta, 16, &(rsds.len() as u32).to_le_bytes());
    put(&mut meta, 20, &rsds_rva.to_le_bytes());
    put(&mut meta, 24, &rsds_rva.to_le_bytes()); // PointerToRawData: raw offsets equal RVAs here
    put(&mut meta, 0x40, &rsds);
    put(&mut h, dirs + 6 * 8, &img.meta_rva.to_le_bytes());
    put(&mut h, dirs + 6 * 8 + 4, &28u32.to_le_bytes());

    if let Some(name) = img.export_name {
        let mut exports = img.exports.clone();
        exports.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let n = exports.len() as u32;
        let dir_rva = img.meta_rva + 0x100;
        let funcs = dir_rva + 40;
        let names = funcs + 4 * n;
        let ords = names + 4 * n;
        let mut strings = ords + 2 * n;
        let rel = |rva: u32| (rva - img.meta_rva) as usize;
        let name_rva = strings;
        put(&mut meta, rel(strings), name.as_bytes());
        strings += name.len() as u32 + 1;
        for (i, (export, rva)) in exports.iter().enumerate() {
            put(&mut meta, rel(funcs) + 4 * i, &rva.to_le_bytes());
            put(&mut meta, rel(names) + 4 * i, &strings.to_le_bytes());
            put(&mut meta, rel(ords) + 2 * i, &(i as u16).to_le_bytes());
            put(&mut meta, rel(strings), export.as_bytes());
            strings += export.len() as u32 + 1;
            put(&mut meta, rel(strings) - 1, &[0]);
        }
        let dir = rel(dir_rva);
        put(&mut meta, dir + 4, &img.timestamp.to_le_bytes());
        put(&mut meta, dir + 12, &name_rva.to_le_bytes());
        put(&mut meta, dir + 16, &1u32.to_le_bytes()); // ordinal base
        put(&mut meta, dir + 20, &n.to_le_bytes());
        put(&mut meta, dir + 24, &n.to_le_bytes());
        put(&mut meta, dir + 28, &funcs.to_le_bytes());
        put(&mut meta, dir + 32, &names.to_le_bytes());
        put(&mut meta, dir + 36, &ords.to_le_bytes());
        put(&mut h, dirs, &dir_rva.to_le_bytes());
        put(&mut h, dirs + 4, &(strings - dir_rva).to_le_bytes());
    }
    if !img.imports.is_empty() {
        // One descriptor (ntoskrnl.exe) and a null one; lookup table and IAT of name RVAs,
        // the IAT then holding the bound addresses as a loaded image's does.
        let slot = if pe64 { 8 } else { 4 };
        let rel = |rva: u32| (rva - img.meta_rva) as usize;
        let mut names = img.meta_rva + IMPORT_NAMES;
        let dll_rva = names;
        put(&mut meta, rel(names), b"ntoskrnl.exe\0");
        names += 14;
        for (i, (func, bound)) in img.imports.iter().enumerate() {
            let hint_name = names;
            put(&mut meta, rel(names) + 2, func.as_bytes());
            names += 2 + func.len() as u32 + 1;
            names += names & 1;
            let ilt = img.meta_rva + IMPORT_ILT + (i * slot) as u32;
            put(
                &mut meta,
                rel(ilt),
                &u64::from(hint_name).to_le_bytes()[..slot],
            );
            put(
                &mut meta,
                rel(iat_rva(img.meta_rva, i, pe64)),
                &bound.to_le_bytes()[..slot],
            );
        }
        let d = rel(img.meta_rva + IMPORT_DIR);
        put(&mut meta, d, &(img.meta_rva + IMPORT_ILT).to_le_bytes());
        put(&mut meta, d + 12, &dll_rva.to_le_bytes());
        put(
            &mut meta,
            d + 16,
            &iat_rva(img.meta_rva, 0, pe64).to_le_bytes(),
        );
        put(&mut meta, d + 39, &[0]);
        put(&mut h, dirs + 8, &(img.meta_rva + IMPORT_DIR).to_le_bytes());
        put(&mut h, dirs + 12, &40u32.to_le_bytes());
        put(
            &mut h,
            dirs + 12 * 8,
            &iat_rva(img.meta_rva, 0, pe64).to_le_bytes(),
        );
        put(
            &mut h,
            dirs + 12 * 8 + 4,
            &((img.imports.len() as u32 + 1) * slot as u32).to_le_bytes(),
        );
        if names > img.meta_rva + 0x1000 {
            return Err(ForgeError::Internal(
                "import names exceed the metadata page".into(),
            ));
        }
    }
    if meta.len() > 0x1000 {
        return Err(ForgeError::Internal("PE metadata exceeds one page".into()));
    }

    let mut sh = dirs + 16 * 8;
    for s in &img.sections {
        let mut name = [0u8; 8];
        let n = s.name.len().min(8);
        name[..n].copy_from_slice(&s.name.as_bytes()[..n]);
        put(&mut h, sh, &name);
        put(&mut h, sh + 8, &s.size.to_le_bytes());
        put(&mut h, sh + 12, &s.rva.to_le_bytes());
        put(
            &mut h,
            sh + 16,
            &s.size.div_ceil(0x200).wrapping_mul(0x200).to_le_bytes(),
        );
        put(&mut h, sh + 20, &s.rva.to_le_bytes());
        put(&mut h, sh + 36, &s.characteristics.to_le_bytes());
        sh += 40;
    }
    if h.len() > 0x1000 {
        return Err(ForgeError::Internal("PE headers exceed one page".into()));
    }
    m.write(img.base, &h)?;
    m.write(img.base + u64::from(img.meta_rva), &meta)?;
    Ok(())
}

/// Directory index of the exception table (`.pdata`: RUNTIME_FUNCTION entries) in the optional
/// header's data directories.
pub const DIRECTORY_EXCEPTION: usize = 3;

/// Gives the first `size` bytes (whole pages) of the section that starts at `rva` of the image
/// at `base` to a new section `name` of `virtual_size` bytes (the old section then starts
/// `size` bytes later), and points data directory `directory` (index, byte count) at it: how a
/// scenario adds a `.pdata` section to an image already written. The section table stays
/// sorted by RVA, as loaders expect.
#[allow(clippy::too_many_arguments)]
pub fn carve_section(
    m: &mut Machine,
    base: u64,
    name: &str,
    rva: u32,
    size: u32,
    virtual_size: u32,
    characteristics: u32,
    directory: Option<(usize, u32)>,
) -> Result<(), ForgeError> {
    let bad = |what: &str| ForgeError::Internal(format!("carve_section {name}: {what}"));
    let header = m.read(base, 0x1000).ok_or(ForgeError::Unmapped(base))?;
    let u16_at = |o: usize| u16::from_le_bytes([header[o], header[o + 1]]);
    let lfanew = u32::from_le_bytes(header[0x3c..0x40].try_into().unwrap_or([0; 4])) as usize;
    let coff = lfanew + 4;
    if coff + 20 > header.len() {
        return Err(bad("no COFF header"));
    }
    let count = usize::from(u16_at(coff + 2));
    let opt = coff + 20;
    let table = opt + usize::from(u16_at(coff + 16));
    let dirs = opt + if u16_at(opt) == 0x20b { 112 } else { 96 };
    if table + (count + 1) * 40 > header.len() {
        return Err(bad("no room for another section header"));
    }
    let mut sections: Vec<[u8; 40]> = (0..count)
        .map(|i| {
            header[table + 40 * i..table + 40 * (i + 1)]
                .try_into()
                .unwrap_or([0; 40])
        })
        .collect();
    let field =
        |s: &[u8; 40], o: usize| u32::from_le_bytes(s[o..o + 4].try_into().unwrap_or([0; 4]));
    let at = sections
        .iter()
        .position(|s| field(s, 12) == rva)
        .ok_or_else(|| bad("no section starts there"))?;
    let old_size = field(&sections[at], 8);
    if old_size <= size {
        return Err(bad("the section it splits is too small"));
    }
    let rest = old_size - size;
    let mut old = sections[at];
    old[8..12].copy_from_slice(&rest.to_le_bytes());
    old[12..16].copy_from_slice(&(rva + size).to_le_bytes());
    old[16..20].copy_from_slice(&rest.div_ceil(0x200).wrapping_mul(0x200).to_le_bytes());
    old[20..24].copy_from_slice(&(rva + size).to_le_bytes());
    sections[at] = old;
    let mut new = [0u8; 40];
    let n = name.len().min(8);
    new[..n].copy_from_slice(&name.as_bytes()[..n]);
    new[8..12].copy_from_slice(&virtual_size.to_le_bytes());
    new[12..16].copy_from_slice(&rva.to_le_bytes());
    new[16..20].copy_from_slice(
        &virtual_size
            .div_ceil(0x200)
            .wrapping_mul(0x200)
            .to_le_bytes(),
    );
    new[20..24].copy_from_slice(&rva.to_le_bytes());
    new[36..40].copy_from_slice(&characteristics.to_le_bytes());
    sections.insert(at, new);
    let flat: Vec<u8> = sections.concat();
    m.write(base + table as u64, &flat)?;
    m.write_u16(base + coff as u64 + 2, (count + 1) as u16)?;
    if let Some((index, bytes)) = directory {
        let d = base + (dirs + 8 * index) as u64;
        m.write_u32(d, rva)?;
        m.write_u32(d + 4, bytes)?;
    }
    Ok(())
}

/// RVA and size of the section `name` of the image at `base`, from its section table.
pub fn section(m: &Machine, base: u64, name: &str) -> Option<(u32, u32)> {
    let h = m.read(base, 0x1000)?;
    let u16_at = |o: usize| Some(u16::from_le_bytes(h.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(h.get(o..o + 4)?.try_into().ok()?));
    let coff = u32_at(0x3c)? as usize + 4;
    let table = coff + 20 + usize::from(u16_at(coff + 16)?);
    (0..usize::from(u16_at(coff + 2)?)).find_map(|i| {
        let s = table + 40 * i;
        let raw = h.get(s..s + 8)?;
        let len = raw.iter().position(|&b| b == 0).unwrap_or(8);
        (&raw[..len] == name.as_bytes()).then_some((u32_at(s + 12)?, u32_at(s + 8)?))
    })
}
