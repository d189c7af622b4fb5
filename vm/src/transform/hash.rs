//! Hashes of the `{s.*}` class, as lowercase hex (md5, sha*), or numbers (crc32, corehash).

use super::{int_arg, str_arg, str_val, text_of};
use crate::value::Value;
use sha2::Digest;

fn hex(d: &[u8]) -> Vec<u8> {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(d.len() * 2);
    for &b in d {
        out.push(H[(b >> 4) as usize]);
        out.push(H[(b & 0xf) as usize]);
    }
    out
}

pub fn md5(v: &Value, _: &[Value]) -> Option<Value> {
    str_val(hex(&md5::Md5::digest(text_of(v)?)))
}

/// `{s.sha1}`: SHA-1 (Kamailio 5.6 has no such transformation).
pub fn sha1(v: &Value, _: &[Value]) -> Option<Value> {
    str_val(hex(&sha1::Sha1::digest(text_of(v)?)))
}

pub fn sha256(v: &Value, _: &[Value]) -> Option<Value> {
    str_val(hex(&sha2::Sha256::digest(text_of(v)?)))
}

pub fn sha384(v: &Value, _: &[Value]) -> Option<Value> {
    str_val(hex(&sha2::Sha384::digest(text_of(v)?)))
}

pub fn sha512(v: &Value, _: &[Value]) -> Option<Value> {
    str_val(hex(&sha2::Sha512::digest(text_of(v)?)))
}

/// The bit size parameter of sha3/keccak: C `strtol` of the text, 256 by default; only 256,
/// 384 and 512 are accepted.
fn bits(args: &[Value]) -> Option<u32> {
    if args.is_empty() {
        return Some(256);
    }
    let t = str_arg(args, 0)?;
    let t = t.trim_ascii_start();
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, t.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, t.get(1..).unwrap_or(&[])),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for &c in digits.iter().take_while(|c| c.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add((c - b'0') as i64);
    }
    let n = if neg { -n } else { n };
    matches!(n, 256 | 384 | 512).then_some(n as u32)
}

/// `{s.sha3[,bits]}` (after 5.6).
pub fn sha3(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let d = match bits(args)? {
        256 => sha3::Sha3_256::digest(&s).to_vec(),
        384 => sha3::Sha3_384::digest(&s).to_vec(),
        _ => sha3::Sha3_512::digest(&s).to_vec(),
    };
    str_val(hex(&d))
}

/// `{s.keccak[,bits]}` (after 5.6): the original Keccak padding.
pub fn keccak(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let d = match bits(args)? {
        256 => sha3::Keccak256::digest(&s).to_vec(),
        384 => sha3::Keccak384::digest(&s).to_vec(),
        _ => sha3::Keccak512::digest(&s).to_vec(),
    };
    str_val(hex(&d))
}

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE), as an integer (after 5.6).
pub fn crc32(v: &Value, _: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let mut h: u32 = 0xffff_ffff;
    for &b in s.iter() {
        h = CRC_TABLE[((h as u8) ^ b) as usize] ^ (h >> 8);
    }
    Some(Value::Int((!h) as i64))
}

/// Kamailio's `core_hash` of one string, reading bytes as signed C chars like it does.
pub(crate) fn core_hash(s: &[u8], size: u32) -> u32 {
    let ch = |k: usize| s.get(k).map_or(0u32, |&b| b as i8 as i32 as u32);
    let mut h: u32 = 0;
    let mut p = 0usize;
    while p + 4 <= s.len() {
        let v = (ch(p) << 24)
            .wrapping_add(ch(p + 1) << 16)
            .wrapping_add(ch(p + 2) << 8)
            .wrapping_add(ch(p + 3));
        h = h.wrapping_add(v ^ (v >> 3));
        p += 4;
    }
    let mut v: u32 = 0;
    while p < s.len() {
        v = (v << 8).wrapping_add(ch(p));
        p += 1;
    }
    h = h.wrapping_add(v ^ (v >> 3));
    h = h
        .wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23));
    if size != 0 {
        h & size.wrapping_sub(1)
    } else {
        h
    }
}

/// `{s.corehash[,size]}`: the hash (masked with size-1 when a size is given), as text.
pub fn corehash(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let size = if args.is_empty() {
        0
    } else {
        int_arg(args, 0)? as u32
    };
    Some(Value::Str(core_hash(&s, size).to_string().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(v: Option<Value>) -> String {
        match v {
            Some(Value::Str(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn digests() {
        let a = Value::from("abc");
        assert_eq!(st(md5(&a, &[])), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            st(sha1(&a, &[])),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            st(sha256(&a, &[])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            st(md5(&Value::Int(1), &[])),
            "c4ca4238a0b923820dcc509a6f75849b"
        );
        assert_eq!(
            st(sha3(&Value::from(""), &[])),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
        assert_eq!(
            st(keccak(&Value::from(""), &[])),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(sha3(&a, &[Value::from("128")]), None);
        assert_eq!(
            crc32(&Value::from("123456789"), &[]),
            Some(Value::Int(0xcbf43926))
        );
        assert_eq!(md5(&Value::Null, &[]), None);
    }
}
