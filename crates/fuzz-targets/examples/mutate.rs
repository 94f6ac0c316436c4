//! A coverage-blind mutation loop over the committed corpus, for machines without cargo fuzz:
//! `cargo run -p fuzz-targets --example mutate -- <target> <inputs> [seed]` mutates the inputs
//! of `fuzz/corpus/<target>/` (bit flips, byte edits, splices, repeats, JSON/XML/TOML tokens)
//! and stops at the first panic, writing the input to `fuzz/artifacts/<target>/`.

use std::path::{Path, PathBuf};

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const TOKENS: &[&[u8]] = &[
    b"\"", b"{", b"}", b"[", b"]", b":", b",", b"null", b"true", b"-1", b"0", b"1e999", b"-9223372036854775809",
    b"18446744073709551616", b"1.5", b"\"\"", b"\\u0000", b"\\ud800", b"<", b">", b"</", b"/>", b"&amp;", b"&#x110000;",
    b"&#0;", b"<![CDATA[", b"]]>", b"=", b"\n", b"[[", b"]]", b"'''", b"nan", b"inf", b"\xff", b"\xc3\xa9", b"\xf0\x9f\x98\x80",
    b"sha256:", b"sha512:", b"Z", b"+99:99", b"9999-12-31T23:59:59Z", b"0000-01-01T00:00:00Z", b"-----BEGIN CERTIFICATE-----",
    b"-----END CERTIFICATE-----", b"VO:", b"=", b"\\", b"^", b"$", b"%", b"://", b"?", b"#",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                input.drain(i..i + n);
            }
            3 => {
                let i = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                input.splice(i..i, t.iter().copied());
            }
            4 if len > 0 => {
                // Repeat a chunk (deep nesting, long values).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let chunk = input[i..i + n].to_vec();
                for _ in 0..1 + rng.below(8) {
                    input.splice(i..i, chunk.iter().copied());
                }
            }
            5 if !corpus.is_empty() => {
                // Splice a piece of another input.
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let j = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - j).min(64));
                    let i = rng.below(len + 1);
                    input.splice(i..i, other[j..j + n].iter().copied());
                }
            }
            6 if len > 1 => {
                let i = rng.below(len);
                let j = rng.below(len);
                input.swap(i, j);
            }
            7 if len > 0 => {
                // A digit run replaced by an extreme number.
                let i = rng.below(len);
                if input[i].is_ascii_digit() {
                    let mut j = i;
                    while j < input.len() && input[j].is_ascii_digit() {
                        j += 1;
                    }
                    let n: &[u8] = [&b"0"[..], b"99999999999999999999", b"4294967296", b"-1", b"255"][rng.below(5)];
                    input.splice(i..j, n.iter().copied());
                }
            }
            _ => {
                let i = rng.below(len + 1);
                input.truncate(i);
            }
        }
    }
    input.truncate(1 << 16);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(count)) = (args.first(), args.get(1).and_then(|c| c.parse::<u64>().ok())) else {
        eprintln!("usage: mutate <target> <inputs> [seed]");
        std::process::exit(2);
    };
    let seed = args.get(2).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0x5EED_F022);
    let f = fuzz_targets::target(name).unwrap_or_else(|| panic!("no target {name}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for sub in ["corpus", "regressions"] {
        let dir = root.join(sub).join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        corpus.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed | 1);
    let started = std::time::Instant::now();
    for n in 0..count {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        if let Err(e) = std::panic::catch_unwind(|| f(&input)) {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            let dir = root.join("artifacts").join(name);
            std::fs::create_dir_all(&dir).expect("creating fuzz/artifacts");
            let path = dir.join(format!("crash-{seed:x}-{n}"));
            std::fs::write(&path, &input).expect("writing the crash input");
            println!("{name}: PANIC after {n} inputs: {}\n  input: {}", msg.unwrap_or_default(), path.display());
            std::process::exit(1);
        }
        // Inputs that parse somewhere deeper become seeds too (a little breadth).
        if n % 64 == 0 && corpus.len() < 4096 {
            corpus.push(input);
        }
    }
    println!("{name}: {count} inputs, no panic ({:.0} s)", started.elapsed().as_secs_f64());
}
