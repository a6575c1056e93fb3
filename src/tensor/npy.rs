//! NumPy `.npy` / `.npz` reading and writing (format versions 1, 2 and 3, little-endian, C order).
use super::{DType, Data, Tensor, numel};
use anyhow::{Context, Result, anyhow, bail};
use half::f16;
use std::io::{Cursor, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads a .npy file.
pub fn read_npy(p: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    parse_npy(&bytes).with_context(|| format!("parsing npy file {}", p.display()))
}

/// Reads every array of a .npz file, in archive order; names lose their `.npy` suffix.
pub fn read_npz(p: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a valid npz (zip) archive", p.display()))?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).with_context(|| format!("npz {}: member {i}", p.display()))?;
        let name = member.name().with_context(|| format!("npz {}: name of member {i}", p.display()))?;
        let name = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        let mut bytes = Vec::with_capacity(member.size().min(1 << 30) as usize);
        member
            .read_to_end(&mut bytes)
            .with_context(|| format!("npz {}: reading member {name:?}", p.display()))?;
        let t = parse_npy(&bytes).with_context(|| format!("npz {}: member {name:?}", p.display()))?;
        out.push((name, t));
    }
    Ok(out)
}

/// Writes a .npy file atomically (temporary file in the same directory, then rename).
pub fn write_npy(p: &Path, t: &Tensor) -> Result<()> {
    crate::util::write_atomic(p, &npy_bytes(t))
}

/// Writes arrays into an uncompressed .npz file atomically; each is stored as `<name>.npy`.
pub fn write_npz(p: &Path, arrays: &[(String, Tensor)]) -> Result<()> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, t) in arrays {
        let bytes = npy_bytes(t);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{name}.npy"), opts).with_context(|| format!("npz member {name:?}"))?;
        zip.write_all(&bytes)?;
    }
    let buf = zip.finish().context("finishing npz archive")?.into_inner();
    crate::util::write_atomic(p, &buf)
}

/// Encodes a tensor as the bytes of a .npy file (version 1.0, or 2.0 for very long headers).
pub fn npy_bytes(t: &Tensor) -> Vec<u8> {
    let shape = match t.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        s => format!("({})", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", descr(t.dtype()));
    // Total header (magic + version + length field + dict + padding + '\n') is a multiple of 64.
    let (version, len_field) = if dict.len() + 1 + 10 <= 65535 { (1u8, 2) } else { (2u8, 4) };
    let unpadded = MAGIC.len() + 2 + len_field + dict.len() + 1;
    let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + len_field + header_len + t.byte_size());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + header_len - dict.len() - 1, b' ');
    out.push(b'\n');
    macro_rules! put {
        ($v:expr) => {
            for x in $v.iter() {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match t.data() {
        Data::F32(v) => put!(v),
        Data::F64(v) => put!(v),
        Data::F16(v) => put!(v),
        Data::I8(v) => put!(v),
        Data::U8(v) => out.extend_from_slice(v),
        Data::I16(v) => put!(v),
        Data::U16(v) => put!(v),
        Data::I32(v) => put!(v),
        Data::U32(v) => put!(v),
        Data::I64(v) => put!(v),
        Data::U64(v) => put!(v),
        Data::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
    }
    out
}

/// Decodes the bytes of a .npy file into a tensor.
pub fn parse_npy(bytes: &[u8]) -> Result<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("not a .npy file: missing the \\x93NUMPY magic ({} bytes)", bytes.len());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("truncated .npy header ({} bytes)", bytes.len());
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        _ => bail!("unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"),
    };
    let end = start.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or_else(|| {
        anyhow!("truncated .npy header: needs {header_len} bytes, file has {}", bytes.len() - start)
    })?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| {
        anyhow!("unsupported .npy header: not valid {}", if major == 3 { "utf-8" } else { "latin-1/ascii" })
    })?;
    let h = parse_header(header)?;
    let dtype = parse_descr(&h.descr)?;
    if h.fortran_order && h.shape.len() > 1 {
        bail!(
            "unsupported .npy array in Fortran order (shape {:?}); save it in C order (np.ascontiguousarray)",
            h.shape
        );
    }
    let n = h
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| anyhow!(".npy shape {:?} is too large", h.shape))?;
    let body = &bytes[end..];
    let want = n.checked_mul(dtype.size()).ok_or_else(|| anyhow!(".npy shape {:?} is too large", h.shape))?;
    if body.len() != want {
        bail!(
            ".npy data for shape {:?} {} needs {want} bytes, file has {}{}",
            h.shape,
            dtype,
            body.len(),
            if body.len() < want { " (truncated)" } else { " (trailing bytes)" }
        );
    }
    macro_rules! get {
        ($t:ty, $w:literal) => {
            body.chunks_exact($w).map(|c| <$t>::from_le_bytes(c.try_into().unwrap())).collect()
        };
    }
    let data = match dtype {
        DType::F32 => Data::F32(get!(f32, 4)),
        DType::F64 => Data::F64(get!(f64, 8)),
        DType::F16 => Data::F16(body.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect()),
        DType::I8 => Data::I8(body.iter().map(|&b| b as i8).collect()),
        DType::U8 => Data::U8(body.to_vec()),
        DType::I16 => Data::I16(get!(i16, 2)),
        DType::U16 => Data::U16(get!(u16, 2)),
        DType::I32 => Data::I32(get!(i32, 4)),
        DType::U32 => Data::U32(get!(u32, 4)),
        DType::I64 => Data::I64(get!(i64, 8)),
        DType::U64 => Data::U64(get!(u64, 8)),
        DType::Bool => Data::Bool(body.iter().map(|&b| b != 0).collect()),
    };
    debug_assert_eq!(numel(&h.shape), data.len());
    Ok(Tensor::new(h.shape, data)?)
}

/// numpy `descr` string of a dtype.
fn descr(d: DType) -> &'static str {
    match d {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::I32 => "<i4",
        DType::U32 => "<u4",
        DType::I64 => "<i8",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
    }
}

/// Parses a numpy `descr` such as `<f4` or `|b1` (little-endian or byte-order-free only).
fn parse_descr(s: &str) -> Result<DType> {
    let (order, code) = match s.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &s[1..]),
        _ => ('=', s),
    };
    let dtype = match code {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "f2" | "e" => DType::F16,
        "i1" | "b" => DType::I8,
        "u1" | "B" => DType::U8,
        "i2" => DType::I16,
        "u2" => DType::U16,
        "i4" => DType::I32,
        "u4" => DType::U32,
        "i8" => DType::I64,
        "u8" => DType::U64,
        "b1" | "?" => DType::Bool,
        _ => bail!("unsupported .npy dtype {s:?} (supported: f2 f4 f8 i1 u1 i2 u2 i4 u4 i8 u8 b1)"),
    };
    if order == '>' && dtype.size() > 1 {
        bail!("unsupported .npy dtype {s:?}: big-endian data (convert with arr.astype('<{code}'))");
    }
    Ok(dtype)
}

/// The three keys of a .npy header dictionary.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the Python dict literal of a .npy header.
fn parse_header(s: &str) -> Result<Header> {
    let mut p = Lexer { s: s.trim_end_matches(['\n', ' ', '\0']).as_bytes(), i: 0 };
    let bad = |why: &str| anyhow!("malformed .npy header {s:?}: {why}");
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{').map_err(|e| bad(&e))?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string().map_err(|e| bad(&e))?;
        p.expect(b':').map_err(|e| bad(&e))?;
        p.ws();
        match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    bail!("unsupported .npy dtype: structured arrays are not supported (header {s:?})");
                }
                descr = Some(p.string().map_err(|e| bad(&e))?);
            }
            "fortran_order" => fortran = Some(p.boolean().map_err(|e| bad(&e))?),
            "shape" => shape = Some(p.tuple().map_err(|e| bad(&e))?),
            k => return Err(bad(&format!("unexpected key {k:?}"))),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}').map_err(|e| bad(&e))?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or_else(|| bad("no 'descr'"))?,
        fortran_order: fortran.ok_or_else(|| bad("no 'fortran_order'"))?,
        shape: shape.ok_or_else(|| bad("no 'shape'"))?,
    })
}

/// Cursor over the header text.
struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let ok = self.peek() == Some(c);
        self.i += ok as usize;
        ok
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        self.ws();
        if self.eat(c) { Ok(()) } else { Err(format!("expected '{}' at byte {}", c as char, self.i)) }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        self.ws();
        let q = self
            .peek()
            .filter(|&c| c == b'\'' || c == b'"')
            .ok_or(format!("expected a string at byte {}", self.i))?;
        self.i += 1;
        let st = self.i;
        while self.peek().is_some_and(|c| c != q) {
            self.i += 1;
        }
        if self.peek().is_none() {
            return Err("unterminated string".into());
        }
        let out = String::from_utf8_lossy(&self.s[st..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        let rest = &self.s[self.i..];
        if rest.starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = vec![];
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let st = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            // numpy < 2 on Windows may write `3L`.
            let digits = std::str::from_utf8(&self.s[st..self.i]).unwrap();
            let d = digits.parse::<usize>().map_err(|_| format!("bad dimension at byte {st}"))?;
            self.eat(b'L');
            dims.push(d);
            self.ws();
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pare-npy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The values `python_interop` writes with numpy, for `dtype`: 12 elements.
    fn sample(dtype: DType) -> Tensor {
        let i = (0..12i64).collect::<Vec<_>>();
        let t = match dtype {
            DType::F32 | DType::F64 | DType::F16 => {
                Tensor::from_vec(vec![12], i.iter().map(|&x| (x * 7 - 20) as f64 / 4.0).collect::<Vec<_>>())
            }
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => {
                Tensor::from_vec(vec![12], i.iter().map(|&x| x * 7).collect::<Vec<_>>())
            }
            DType::Bool => Tensor::from_vec(vec![12], i.iter().map(|&x| x % 3 == 0).collect::<Vec<_>>()),
            _ => Tensor::from_vec(vec![12], i.iter().map(|&x| x * 7 - 20).collect::<Vec<_>>()),
        };
        t.cast(dtype).reshape(vec![3, 4]).unwrap()
    }

    const ALL: [DType; 12] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::Bool,
    ];

    fn extremes(dtype: DType) -> Tensor {
        let d = match dtype {
            DType::F32 => Data::F32(vec![f32::MIN, f32::MAX, -0.0, f32::INFINITY, 1e-40, 3.5]),
            DType::F64 => Data::F64(vec![f64::MIN, f64::MAX, -0.0, f64::NEG_INFINITY, 5e-324, 3.5]),
            DType::F16 => Data::F16(
                [f16::MIN, f16::MAX, f16::NEG_ZERO, f16::INFINITY, f16::MIN_POSITIVE_SUBNORMAL, f16::ONE]
                    .to_vec(),
            ),
            DType::I8 => Data::I8(vec![i8::MIN, i8::MAX, 0, -1, 1, 7]),
            DType::U8 => Data::U8(vec![0, u8::MAX, 1, 2, 128, 7]),
            DType::I16 => Data::I16(vec![i16::MIN, i16::MAX, 0, -1, 1, 7]),
            DType::U16 => Data::U16(vec![0, u16::MAX, 1, 2, 3, 7]),
            DType::I32 => Data::I32(vec![i32::MIN, i32::MAX, 0, -1, 1, 7]),
            DType::U32 => Data::U32(vec![0, u32::MAX, 1, 2, 3, 7]),
            DType::I64 => Data::I64(vec![i64::MIN, i64::MAX, 0, -1, 1, 7]),
            DType::U64 => Data::U64(vec![0, u64::MAX, 1, 2, 3, 7]),
            DType::Bool => Data::Bool(vec![true, false, false, true, true, false]),
        };
        Tensor::new(vec![2, 3], d).unwrap()
    }

    #[test]
    fn roundtrip_all_dtypes_and_shapes() {
        for dt in ALL {
            let t = extremes(dt);
            for shape in [vec![2, 3], vec![6], vec![1, 2, 1, 3]] {
                let t = t.reshape(shape).unwrap();
                let b = npy_bytes(&t);
                let header_end = 10 + u16::from_le_bytes([b[8], b[9]]) as usize;
                assert_eq!(header_end % 64, 0, "{dt}: header not aligned");
                assert_eq!(b[header_end - 1], b'\n');
                let back = parse_npy(&b).unwrap();
                assert_eq!(back.dtype(), dt);
                assert_eq!(back, t, "{dt}");
            }
            let scalar = Tensor::new(vec![], Data::zeros(dt, 1)).unwrap();
            assert_eq!(parse_npy(&npy_bytes(&scalar)).unwrap(), scalar);
            let empty = Tensor::zeros(dt, vec![0, 4]);
            assert_eq!(parse_npy(&npy_bytes(&empty)).unwrap(), empty);
        }
        let nan = Tensor::from_vec(vec![2], vec![f32::NAN, -f32::NAN]);
        let back = parse_npy(&npy_bytes(&nan)).unwrap();
        let v = back.f32s().unwrap();
        assert!(v[0].is_nan() && v[1].is_nan() && v[1].is_sign_negative());
    }

    #[test]
    fn header_text_matches_numpy() {
        let header = |b: &[u8]| {
            let len = u16::from_le_bytes([b[8], b[9]]) as usize;
            std::str::from_utf8(&b[10..10 + len]).unwrap().to_string()
        };
        let b = npy_bytes(&Tensor::zeros(DType::F32, vec![2, 3]));
        let h = header(&b);
        assert_eq!(h.trim_end(), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
        assert_eq!((h.len() + 10, b.len()), (128, 128 + 24));
        let b = npy_bytes(&Tensor::zeros(DType::Bool, vec![5]));
        assert_eq!(header(&b).trim_end(), "{'descr': '|b1', 'fortran_order': False, 'shape': (5,), }");
        assert_eq!(
            header(&npy_bytes(&Tensor::scalar(1u8))).trim_end(),
            "{'descr': '|u1', 'fortran_order': False, 'shape': (), }"
        );
    }

    fn raw_npy(major: u8, header: &str, body: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[major, 0]);
        if major == 1 {
            b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn reads_v2_v3_and_header_variants() {
        let body: Vec<u8> = [1i16, -2, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
        for major in [1, 2, 3] {
            let h = "{\"descr\":'<i2','shape':(3,),'fortran_order':False}\n";
            let t = parse_npy(&raw_npy(major, h, &body)).unwrap();
            assert_eq!(t.as_slice::<i16>().unwrap(), &[1, -2, 3]);
            assert_eq!(t.shape(), &[3]);
        }
        let t = parse_npy(&raw_npy(
            1,
            "{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }  \n",
            &[0u8; 16],
        ));
        assert_eq!(t.unwrap().shape(), &[2], "1-d Fortran order equals C order");
        let t = parse_npy(&raw_npy(
            1,
            "{'descr': '|u1', 'fortran_order': False, 'shape': (1L, 2L), }\n",
            &[4, 5],
        ));
        assert_eq!(t.unwrap().as_slice::<u8>().unwrap(), &[4, 5]);
    }

    #[test]
    fn clear_errors() {
        let err = |b: &[u8]| format!("{:#}", parse_npy(b).unwrap_err());
        assert!(err(b"PK\x03\x04 not npy").contains("magic"));
        let good = npy_bytes(&Tensor::from_vec(vec![4], vec![1.0f32, 2.0, 3.0, 4.0]));
        let e = err(&good[..good.len() - 3]);
        assert!(e.contains("truncated") && e.contains("needs 16 bytes"), "{e}");
        assert!(err(&good[..40]).contains("truncated .npy header"));
        let mut long = good.clone();
        long.push(0);
        assert!(err(&long).contains("trailing"));
        let mut v4 = good.clone();
        v4[6] = 4;
        assert!(err(&v4).contains("version 4.0"));
        let f = raw_npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", &[0; 16]);
        assert!(err(&f).contains("Fortran order"));
        let be = raw_npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n", &[0; 4]);
        assert!(err(&be).contains("big-endian"));
        let c = raw_npy(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", &[0; 8]);
        assert!(err(&c).contains("unsupported .npy dtype \"<c8\""));
        let s = raw_npy(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", &[0; 4]);
        assert!(err(&s).contains("structured"));
        let m = raw_npy(1, "{'descr': '<f4', 'shape': (1,), }\n", &[0; 4]);
        assert!(err(&m).contains("no 'fortran_order'"));
        let huge = raw_npy(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }\n",
            &[],
        );
        assert!(err(&huge).contains("too large"));
    }

    #[test]
    fn files_and_npz_roundtrip() {
        let d = tmpdir("rt");
        let arrays: Vec<(String, Tensor)> = ALL.iter().map(|&dt| (format!("a_{dt}"), extremes(dt))).collect();
        for (name, t) in &arrays {
            let p = d.join(format!("{name}.npy"));
            write_npy(&p, t).unwrap();
            assert_eq!(&read_npy(&p).unwrap(), t);
        }
        let p = d.join("all.npz");
        write_npz(&p, &arrays).unwrap();
        write_npz(&p, &arrays).unwrap(); // overwrite in place
        assert_eq!(read_npz(&p).unwrap(), arrays);
        let leftovers: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        assert!(write_npy(&d.join("missing-dir/x.npy"), &arrays[0].1).is_err());
        std::fs::write(d.join("bad.npz"), b"not a zip").unwrap();
        assert!(format!("{:#}", read_npz(&d.join("bad.npz")).unwrap_err()).contains("not a valid npz"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// True if `python3` with numpy runs; otherwise skips (fails under CI: CI=true or CI=1).
    fn have_numpy() -> bool {
        let ok = std::process::Command::new("python3")
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(!crate::data::in_ci(), "python3 with numpy is required under CI (CI=true or CI=1)");
            eprintln!("SKIP: python3 with numpy not available; numpy interop not tested");
        }
        ok
    }

    #[test]
    fn python_interop() {
        if !have_numpy() {
            return;
        }
        let d = tmpdir("py");
        let script = r#"
import sys, numpy as np
d = sys.argv[1]
names = ['float32','float64','float16','int8','uint8','int16','uint16','int32','uint32','int64','uint64','bool']
i = np.arange(12)
arrs = {}
for n in names:
    if n.startswith('float'): a = ((i * 7 - 20) / 4).astype(n)
    elif n.startswith('uint'): a = (i * 7).astype(n)
    elif n == 'bool': a = (i % 3 == 0)
    else: a = (i * 7 - 20).astype(n)
    a = a.reshape(3, 4)
    np.save(f'{d}/np_{n}.npy', a)
    arrs[n] = a
np.savez_compressed(f'{d}/np_all.npz', **arrs)
with open(f'{d}/np_v2.npy', 'wb') as f:
    np.lib.format.write_array(f, arrs['int32'], version=(2, 0))
with open(f'{d}/np_v3.npy', 'wb') as f:
    np.lib.format.write_array(f, arrs['float16'], version=(3, 0))
np.save(f'{d}/np_fortran.npy', np.asfortranarray(arrs['float32']))
np.save(f'{d}/np_special.npy', np.array([np.nan, np.inf, -np.inf, -0.0], dtype=np.float32))
np.save(f'{d}/np_scalar.npy', np.float64(2.5))
np.save(f'{d}/np_bigendian.npy', arrs['float32'].astype('>f4'))
"#;
        let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&d).output().unwrap();
        assert!(out.status.success(), "numpy script failed: {}", String::from_utf8_lossy(&out.stderr));
        for dt in ALL {
            let t = read_npy(&d.join(format!("np_{dt}.npy"))).unwrap();
            assert_eq!(t.dtype(), dt);
            assert_eq!(t.shape(), &[3, 4]);
            assert_eq!(t.to_f64_vec(), sample(dt).to_f64_vec(), "{dt}");
        }
        let npz = read_npz(&d.join("np_all.npz")).unwrap();
        assert_eq!(npz.len(), 12);
        for (name, t) in &npz {
            let dt = ALL.iter().find(|d| d.name() == name).unwrap();
            assert_eq!(t, &sample(*dt), "npz member {name}");
        }
        assert_eq!(read_npy(&d.join("np_v2.npy")).unwrap(), sample(DType::I32));
        assert_eq!(read_npy(&d.join("np_v3.npy")).unwrap(), sample(DType::F16));
        let e = format!("{:#}", read_npy(&d.join("np_fortran.npy")).unwrap_err());
        assert!(e.contains("Fortran order") && e.contains("np_fortran.npy"), "{e}");
        assert!(format!("{:#}", read_npy(&d.join("np_bigendian.npy")).unwrap_err()).contains("big-endian"));
        let s = read_npy(&d.join("np_special.npy")).unwrap();
        let v = s.f32s().unwrap();
        assert!(v[0].is_nan() && v[1] == f32::INFINITY && v[2] == f32::NEG_INFINITY);
        assert!(v[3] == 0.0 && v[3].is_sign_negative());
        let sc = read_npy(&d.join("np_scalar.npy")).unwrap();
        assert_eq!((sc.shape(), sc.as_slice::<f64>().unwrap()), (&[][..], &[2.5][..]));

        // numpy reads what pare writes.
        let mine: Vec<(String, Tensor)> = ALL.iter().map(|&dt| (dt.name().to_string(), sample(dt))).collect();
        for (n, t) in &mine {
            write_npy(&d.join(format!("pare_{n}.npy")), t).unwrap();
        }
        write_npz(&d.join("pare_all.npz"), &mine).unwrap();
        let check = r#"
import sys, numpy as np
d = sys.argv[1]
ref = np.load(f'{d}/np_all.npz')
z = np.load(f'{d}/pare_all.npz')
assert sorted(z.files) == sorted(ref.files), z.files
for n in ref.files:
    a = np.load(f'{d}/pare_{n}.npy')
    assert a.dtype == ref[n].dtype and a.shape == ref[n].shape and (a == ref[n]).all(), n
    assert z[n].dtype == ref[n].dtype and (z[n] == ref[n]).all(), n
print('ok')
"#;
        let out = std::process::Command::new("python3").arg("-c").arg(check).arg(&d).output().unwrap();
        assert!(
            out.status.success(),
            "numpy could not read pare's files: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
