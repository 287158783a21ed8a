//! The processor state a crash dump records: CONTEXT (AMD64 0x4D0 bytes, i386 0x2CC bytes) and
//! EXCEPTION_RECORD (64-bit 0x98 bytes, 32-bit 0x50 bytes), laid out as winnt.h declares them.
//! The same bytes go to the dump header and, for the exception bugchecks, to the stack, where
//! bugcheck parameters 3 and 4 point.

/// CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS.
const FLAGS_AMD64: u32 = 0x0010_0007;
/// CONTEXT_i386 | CONTROL | INTEGER | SEGMENTS.
const FLAGS_I386: u32 = 0x0001_0007;
pub const CONTEXT_AMD64_SIZE: usize = 0x4d0;
pub const CONTEXT_I386_SIZE: usize = 0x2cc;

/// Register state of the faulting frame, by x64 register number (rax 0 .. r15 15), plus the
/// instruction pointer. On x86 the low eight entries are eax..edi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registers {
    pub gpr: [u64; 16],
    pub ip: u64,
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

/// An AMD64 CONTEXT: kernel segments (cs 0x10, ss 0x18), IF set.
pub fn amd64(r: &Registers) -> Vec<u8> {
    let mut b = vec![0u8; CONTEXT_AMD64_SIZE];
    put(&mut b, 0x30, &FLAGS_AMD64.to_le_bytes());
    put(&mut b, 0x34, &0x1f80u32.to_le_bytes()); // MxCsr
                                                 // FltSave (XMM_SAVE_AREA32 at 0x100): ControlWord, MxCsr (readers check it equals the
                                                 // one above), MxCsr_Mask.
    put(&mut b, 0x100, &0x27fu16.to_le_bytes());
    put(&mut b, 0x118, &0x1f80u32.to_le_bytes());
    put(&mut b, 0x11c, &0xffbfu32.to_le_bytes());
    put(&mut b, 0x38, &0x10u16.to_le_bytes()); // SegCs
    for off in [0x3a, 0x3c, 0x3e, 0x40] {
        put(&mut b, off, &0x2bu16.to_le_bytes()); // SegDs, SegEs, SegFs, SegGs
    }
    put(&mut b, 0x42, &0x18u16.to_le_bytes()); // SegSs
    put(&mut b, 0x44, &0x10282u32.to_le_bytes()); // EFlags
    for (i, v) in r.gpr.iter().enumerate() {
        put(&mut b, 0x78 + 8 * i, &v.to_le_bytes());
    }
    put(&mut b, 0xf8, &r.ip.to_le_bytes());
    b
}

/// An i386 CONTEXT: kernel segments (cs 8, ss/ds/es 0x10 and 0x23, fs 0x30).
pub fn i386(r: &Registers) -> Vec<u8> {
    let mut b = vec![0u8; CONTEXT_I386_SIZE];
    put(&mut b, 0, &FLAGS_I386.to_le_bytes());
    put(&mut b, 0x90, &0x30u32.to_le_bytes()); // SegFs
    put(&mut b, 0x94, &0x23u32.to_le_bytes()); // SegEs
    put(&mut b, 0x98, &0x23u32.to_le_bytes()); // SegDs
                                               // Edi, Esi, Ebx, Edx, Ecx, Eax, Ebp from register numbers 7, 6, 3, 2, 1, 0, 5.
    for (off, n) in [
        (0x9c, 7),
        (0xa0, 6),
        (0xa4, 3),
        (0xa8, 2),
        (0xac, 1),
        (0xb0, 0),
        (0xb4, 5),
    ] {
        put(&mut b, off, &(r.gpr[n] as u32).to_le_bytes());
    }
    put(&mut b, 0xb8, &(r.ip as u32).to_le_bytes());
    put(&mut b, 0xbc, &8u32.to_le_bytes()); // SegCs
    put(&mut b, 0xc0, &0x10282u32.to_le_bytes()); // EFlags
    put(&mut b, 0xc4, &(r.gpr[4] as u32).to_le_bytes()); // Esp
    put(&mut b, 0xc8, &0x10u32.to_le_bytes()); // SegSs
    b
}

/// An access violation reading `address` at instruction `at` (STATUS_ACCESS_VIOLATION,
/// parameters: 0 = read, the address), as EXCEPTION_RECORD64 or EXCEPTION_RECORD32.
pub fn access_violation(wide: bool, at: u64, address: u64) -> Vec<u8> {
    const STATUS_ACCESS_VIOLATION: u32 = 0xc000_0005;
    if wide {
        let mut b = vec![0u8; 0x98];
        put(&mut b, 0, &STATUS_ACCESS_VIOLATION.to_le_bytes());
        put(&mut b, 0x10, &at.to_le_bytes());
        put(&mut b, 0x18, &2u32.to_le_bytes());
        put(&mut b, 0x28, &address.to_le_bytes());
        b
    } else {
        let mut b = vec![0u8; 0x50];
        put(&mut b, 0, &STATUS_ACCESS_VIOLATION.to_le_bytes());
        put(&mut b, 0xc, &(at as u32).to_le_bytes());
        put(&mut b, 0x10, &2u32.to_le_bytes());
        put(&mut b, 0x18, &(address as u32).to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd64_fields_where_winnt_has_them() {
        let mut r = Registers {
            gpr: [0; 16],
            ip: 0xfffff806_1c003012,
        };
        r.gpr[4] = 0xfffff08a_3c5f8e40;
        r.gpr[5] = 0x1234;
        let b = amd64(&r);
        assert_eq!(&b[0xf8..0x100], &r.ip.to_le_bytes());
        assert_eq!(&b[0x98..0xa0], &r.gpr[4].to_le_bytes()); // Rsp
        assert_eq!(&b[0xa0..0xa8], &0x1234u64.to_le_bytes()); // Rbp
        let x = i386(&r);
        assert_eq!(&x[0xb8..0xbc], &0x1c003012u32.to_le_bytes());
        assert_eq!(&x[0xb4..0xb8], &0x1234u32.to_le_bytes());
    }
}
