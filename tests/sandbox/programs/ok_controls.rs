// positive control (Rust): threads, 100 MB, std collections, 200 KB on both streams
use std::collections::HashMap;
use std::io::Write;
fn main() {
    let hs: Vec<_> = (0..8).map(|_| std::thread::spawn(|| (0..1_000_000u64).map(|k| k % 7).sum::<u64>())).collect();
    let acc: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let big = vec![7u8; 100 << 20];
    let mut m = HashMap::new();
    for i in 0..1000 { m.insert(i.to_string(), i); }
    let mut v: Vec<i32> = (0..1000).map(|i| (i * 7919) % 1000).collect();
    v.sort();
    let line = "1".repeat(63);
    let (out, err) = (std::io::stdout(), std::io::stderr());
    let (mut o, mut e) = (out.lock(), err.lock());
    for _ in 0..(200 * 1024 / 64) { writeln!(o, "{}", line).unwrap(); writeln!(e, "{}", line).unwrap(); }
    writeln!(o, "{} {} {} {}", acc[7], big[big.len() - 1], v[999], m.len()).unwrap();
}
