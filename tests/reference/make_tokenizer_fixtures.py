#!/usr/bin/env python3
"""Regenerate tests/fixtures/tokenizer/ with Hugging Face `tokenizers` (PyPI) as the
reference for the C tokenizer (data/tokenizer.c) and trainer (data/bpe_train.c).

  python3 tests/reference/make_tokenizer_fixtures.py   (from the repo root, after `make`)

Writes:
  corpus.txt            the varied test corpus (code, CJK, emoji, whitespace runs, digits,
                        contractions, special tokens inside text, NFC-sensitive letters)
  deepseek.json         byte-level BPE with DeepSeek-V2's exact pre-tokenizer (spec §10.2),
                        trained by HF BpeTrainer on HumanEval, + DeepSeek's 5 special tokens and
                        extra added tokens exercising lstrip/rstrip/single_word/normalized
  gpt2.json             ByteLevel(use_regex=True) i.e. the GPT-2 regex, + <|endoftext|>
  mixed.json            Split with String patterns, every behavior, invert, Ruby-syntax regex
                        features (?i: possessive, \\h, \\w, $), Digits contiguous, ByteLevel prefix space
  crucible_trained.json what `crucible tokenizer train` writes for corpus.txt (vocab 600)
  expected_<name>.json  {"cases": [{"hex", "ids", "ids_no_special", "roundtrip"}], "decode": [{"ids", "hex"}]}
                        HF encode(add_special_tokens=False) of every case, with and without
                        special-token parsing, and HF decode of random id sequences
  tiny_bpe.json         hand-built BPEs missing byte tokens (unk_token, fuse_unk, dropped bytes)
                        and with ignore_merges, with HF's encodings
  invalid_utf8.json     byte strings with ill-formed UTF-8 and their expected ids under the
                        documented rule (each stray byte is its own piece; valid runs are
                        encoded by HF as separate texts)
"""
import gzip, json, os, random, subprocess, sys

from tokenizers import Tokenizer, Regex, AddedToken, models, pre_tokenizers, decoders, normalizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
HUMANEVAL = "/work/shared/datasets/HumanEval.jsonl.gz"
if not os.path.exists(HUMANEVAL):
    HUMANEVAL = os.path.join(ROOT, "..", "shared", "datasets", "HumanEval.jsonl.gz")

# ---- DeepSeek-V2 pre-tokenizer from exact code points (spec §10.2) -------------------
LETTERS = """0041-005A 0061-007A 00B5 00C0-00D6 00D8-00F6 00F8-01BA 01BC-01BF 01C4-0293 0295-02AF 0370-0373
0376-0377 037B-037D 037F 0386 0388-038A 038C 038E-03A1 03A3-03F5 03F7-0481 048A-052F 0531-0556
10A0-10C5 13A0-13F5 13F8-13FD 1C90-1CBA 1CBD-1CBF 1D00-1D2B 1D6B-1D77 1D79-1D9A 1E00-1F15 1F18-1F1D
1F20-1F45 1F48-1F4D 1F50-1F57 1F59 1F5B 1F5D 1F5F-1F7D 1F80-1FB4 1FB6-1FBC 1FBE 1FC2-1FC4 1FC6-1FCC
1FD0-1FD3 1FD6-1FDB 1FE0-1FEC 1FF2-1FF4 1FF6-1FFC 2102 2107 210A-2113 2115 2119-211D 2124 2126 2128
212A-212D 212F-2134 2139 213C-213F 2145-2149 214E 2183-2184 2C00-2C7B 2C7E-2CE4 2CEB-2CEE 2CF2-2CF3
A640-A66D A680-A69B A722-A76F A771-A787 A78B-A78E AB70-ABBF FB00-FB06 FB13-FB17 FF21-FF3A FF41-FF5A
10400-1044F 104B0-104D3 104D8-104FB 10C80-10CB2 10CC0-10CF2 118A0-118DF 1E900-1E943""".split()


def cls(ranges):
    out = []
    for r in ranges:
        a, _, b = r.partition("-")
        out.append(chr(int(a, 16)) + ("-" + chr(int(b, 16)) if b else ""))
    return "".join(out)


LETTER_CLASS = cls(LETTERS)
PUNCT_CLASS = cls("0021-002F 003A-007E FF01-FF0F FF1A-FF5E 2018-201F 3000-3002".split())
CJK_CLASS = cls("4E00-9FA5 0800-4E00 AC00-D7FF".split())
assert sum(int(r.partition("-")[2] or r.partition("-")[0], 16) - int(r.partition("-")[0], 16) + 1 for r in LETTERS) == 2729


def deepseek_pretok():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("[\r\n]"), "isolated"),
        pre_tokenizers.Split(Regex("\\s?[" + LETTER_CLASS + "]+"), "isolated"),
        pre_tokenizers.Split(Regex("\\s?[" + PUNCT_CLASS + "]+"), "isolated"),
        pre_tokenizers.Split(Regex("\\s+$"), "isolated"),
        pre_tokenizers.Split(Regex("[" + CJK_CLASS + "]+"), "isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


DEEPSEEK_SPECIAL = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜fim▁hole｜>",
                    "<｜fim▁begin｜>", "<｜fim▁end｜>"]

# ---- the corpus -------------------------------------------------------------------------
CORPUS_LINES = [
    "#include <stdio.h>\nint main(void) {\n    printf(\"hello, world\\n\");\n    return 0;\n}\n",
    "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "fn main() {\n    let v: Vec<u64> = (1..=10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const add = (a, b) => a + b; // arrow fn\nconsole.log(`sum=${add(2, 40)}`);\n",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"Go!\")\n}\n",
    "#!/bin/sh\nfor f in *.c; do gcc -O2 -Wall \"$f\" -o \"${f%.c}\" || exit 1; done\n",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name DESC;\n",
    "I'm sure they'll say it's fine, but we've seen what you'd do. DON'T! He's here; I'LL go.",
    "这是一个测试句子，用于检验分词器。中文、日本語のテキスト、한국어 문장도 포함됩니다。",
    "東京都は日本の首都です。ひらがな カタカナ ｶﾀｶﾅ 漢字混じり文。",
    "Emoji: 😀👍🏽👨‍👩‍👧‍👦🇩🇪🏳️‍🌈 ❤️ ✨ and symbols ∑∫√∞ ≤ ≥ ≠ → ⇒ ©®™ ☃",
    "Whitespace:  two   three    four\t\ttabs \u00a0nbsp\u3000ideographic\u2028line sep\u2029para \r\nCRLF\r\rCR\n\n\nend   ",
    "    \n        \n\t\n   trailing   \n",
    "Digits: 0 12 345 6789 3.14159 1e-9 0xDEADBEEF 1_000_000 ٣٤٥ ²³ Ⅻ ½ 一二三 ① 𝟘𝟙",
    "Greek Ελληνικά, Cyrillic кириллица Русский, Armenian Հայերեն, Georgian ქართული Ⴀ, Cherokee ᏣᎳᎩ ᏸ.",
    "NFC-sensitive: \u1f7d \u1fbe \u1fd3 \u1fdb \u2126 \u212a vs \u03ce \u03b9 \u0390 \u038a \u03a9 K; \u212b \u2132 \u214e \u2183.",
    "Letters at edges: \u00b5\u00ba\u00aa \u01bb\u01bc \u0294\u0295 \u02b0 \u1d2c \u1d6b \u2c7c\u2c7d\u2c7e \ua770\ua771 \ua788\ua78b \uff21\uff41 \U00010400 \U0001e900 \U0001d400",
    "Punctuation: ！＂＃（）＊，－．／：；＜＝＞？＠［＼］＾＿｀｛｜｝～ ‘quoted’ “double” „low‟ 、。〃 「」『』",
    "Indic/Thai in the U+0800..U+4E00 sweep: हिन्दी नमस्ते ไทยภาษา ভাষা ㄅㄆㄇ ㄱㄴㄷ ⺀ 〆",
    "Arabic العربية and Hebrew עברית with RTL marks \u200f\u200e and zero width \u200b\u200c\u200d joiners.",
    "Special tokens inside text: <｜begin▁of▁sentence｜>User: hi\n\nAssistant: hello<｜end▁of▁sentence｜>",
    "<｜fim▁begin｜>def f(x):\n    <｜fim▁hole｜>\n    return y<｜fim▁end｜>",
    "Near-misses: <｜begin▁of▁sentence> <｜fim▁hole｜ <|endoftext|> <s></s> <｜fim▁begin｜><｜fim▁begin｜>",
    "Flags: a  <mask>  b|c <eot>   d| x<think>y ok <think> go foo_bar food_bar xfoo_bar <user> <USER>",
    "single_word neighbours: \u2169foo_bar foo_bar\u00b2 \u200dfoo_bar foo_bar\ua6e7 \u02e6foo_bar \u24b6foo_bar 1foo_bar",
    "Word class: ab\u2169\u00b2 x_y\u00b3 \u24b6\u00b2 \u02e6\u00b2 \u200d\u00b3 \u0301\u00b2 \u203f\u00b3",
    "Mixed scripts: naïve café résumé Ångström façade coöperate Øresund ß ẞ ǅ ǈ ǋ ǲ ﬁ ﬂ",
    "Math: ∀x∈ℝ, ∃y: x²+y²=1; ∮E·dA = Q/ε₀ ℏω ℵ₀ ⅈ ℂℍℕℙℚℤ",
    "URL https://example.com/path?q=1&r=two#frag, email a.b+c@d-e.org, path C:\\Users\\x\\file.txt",
    "JSON {\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
    "Long word: supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "Long run: " + "=" * 70 + " " + "a" * 60 + " " + "-_" * 30,
    "Control chars: \x01\x02\x07\x1b[31mred\x1b[0m \x7f \x1c\x1d\x1e\x1f end",
    "Private use \ue000\uf8ff, noncharacters \ufdd0 \ufffe, replacement \ufffd, BOM \ufeff, max \U0010ffff",
    "Mongolian \u1820\u1821 vowel sep\u180e, ogham\u1680space, narrow\u202fnbsp, math\u205fsp, nel\u0085x",
    "Contractions mixed: I'VE We'Re it'S can't won't y'all 'tis rock'n'roll ’curly’ 'quoted'",
    "a\nb\r\nc\rd\n\ne\n\r\nf",
]

random.seed(1234)


def cases():
    out = list(CORPUS_LINES)
    out.append("".join(CORPUS_LINES))          # the whole corpus as one text
    out += ["", " ", "\n", "\n\n", "  \n  ", "a", "ab", "Ċ", "Ġ", "  a", "\t\n", "x" * 300, " " * 300,
            "中" * 100, "😀" * 50, "<｜end▁of▁sentence｜>", "User: x<｜end▁of▁sentence｜>User:"]
    # random slices of the corpus (cut at char boundaries)
    whole = "".join(CORPUS_LINES)
    for _ in range(60):
        i = random.randrange(len(whole))
        j = min(len(whole), i + random.randrange(1, 200))
        out.append(whole[i:j])
    return out


def train_hf(pretok, vocab_size, added, special_first=False):
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pretok
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    texts = []
    with gzip.open(HUMANEVAL, "rt") as f:
        for line in f:
            d = json.loads(line)
            texts.append(d["prompt"] + d["canonical_solution"])
    texts += CORPUS_LINES
    tok.train_from_iterator(texts, trainer)
    tok.add_tokens([a for a in added if not a.special])
    tok.add_special_tokens([a for a in added if a.special])
    return tok


def at(content, special, **kw):
    return AddedToken(content, special=special, normalized=kw.pop("normalized", not special), **kw)


def expected(tok, texts, rng):
    res = {"cases": [], "decode": []}
    for s in texts:
        ids = tok.encode(s, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_ns = tok.encode(s, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        # lstrip/rstrip tokens swallow whitespace, so not every case decodes back to itself
        rt = tok.decode(ids, skip_special_tokens=False) == s
        res["cases"].append({"hex": s.encode("utf-8").hex(), "ids": ids, "ids_no_special": ids_ns,
                             "roundtrip": rt})
    n = tok.get_vocab_size(with_added_tokens=True)
    for _ in range(40):
        ids = [rng.randrange(n) for _ in range(rng.randrange(1, 12))]
        res["decode"].append({"ids": ids, "hex": tok.decode(ids, skip_special_tokens=False).encode("utf-8").hex()})
    return res


def valid_runs(b):
    """Split bytes into ("text", str) runs of well-formed UTF-8 and ("byte", int) strays."""
    out, i, run = [], 0, bytearray()
    while i < len(b):
        for k in (1, 2, 3, 4):
            try:
                if len(b[i:i + k].decode("utf-8")) == 1 and i + k <= len(b):
                    break
            except UnicodeDecodeError:
                continue
        else:
            k = 0
        if k:
            run += b[i:i + k]
            i += k
        else:
            if run:
                out.append(("text", run.decode("utf-8")))
                run = bytearray()
            out.append(("byte", b[i]))
            i += 1
    if run:
        out.append(("text", run.decode("utf-8")))
    return out


def byte_token(tok, byte):
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for x in range(256):
        if x not in bs:
            bs.append(x)
            cs.append(256 + n)
            n += 1
    return tok.token_to_id(chr(dict(zip(bs, cs))[byte]))


INVALID = [b"\xff", b"abc\xffdef", b"\x80\x80", b"caf\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(x",
           b"\xed\xa0\x80 surrogate", b"\xc0\xaf overlong", b"\xf4\x90\x80\x80 too big", b"\xf0\x9f\x98",
           b"ok \xf0\x9f\x98\x80 \xf0\x9f\x98 end", b"\xfe\xfe\xff\xff", b"line\n\xff\n\xff\xff  \n",
           b"   \xa0  ", b"\xe4\xb8\xad\xe4\xb8 mid-CJK \xe4\xb8\xad", b"x\x00y\x00", b"\x00",
           b"\xef\xbb\xbfbom", b"digits 12\xff34", b"<\xef\xbd\x9cfim\xe2\x96\x81hole\xef\xbd\x9c\xff>"]


def invalid_cases(tok):
    out = []
    for b in INVALID:
        ids = []
        for kind, v in valid_runs(b):
            ids += tok.encode(v, add_special_tokens=False).ids if kind == "text" else [byte_token(tok, v)]
        out.append({"hex": b.hex(), "ids": ids,
                     "lossy_hex": b.decode("utf-8", "replace").encode("utf-8").hex()})
    return out


def tiny_variants():
    """Hand-built byte-level BPEs that lack byte tokens: unk_token / fuse_unk / dropped
    bytes, and ignore_merges."""
    vocab = {"a": 0, "b": 1, "ab": 2, "<unk>": 3, "Ġ": 4, "Ġab": 5, "Ġa": 6, "abab": 7}
    merges = [("a", "b"), ("Ġ", "a"), ("Ġa", "b")]
    texts = ["abcc ab xyz", "abab ab", "", "zz", " a b ab abab"]
    out = []
    for unk, fuse, ign in [(None, False, False), ("<unk>", False, False), ("<unk>", True, False),
                           (None, False, True), ("<unk>", True, True)]:
        t = Tokenizer(models.BPE(vocab=dict(vocab), merges=list(merges), unk_token=unk, fuse_unk=fuse,
                                 ignore_merges=ign))
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        t.decoder = decoders.ByteLevel()
        out.append({"tokenizer": json.loads(t.to_str()),
                    "texts": [{"hex": x.encode().hex(), "ids": t.encode(x, add_special_tokens=False).ids}
                              for x in texts]})
    return out


def dump(name, obj):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "corpus.txt"), "w", encoding="utf-8", newline="") as f:
        f.write("".join(CORPUS_LINES))
    texts = cases()
    rng = random.Random(7)

    ds_added = [at(c, True) for c in DEEPSEEK_SPECIAL] + [
        at("<mask>", True, lstrip=True), at("<eot>", True, rstrip=True), at("<think>", False),
        at("foo_bar", False, single_word=True), at("<user>", False, normalized=False),
        at("|c", False, lstrip=True, rstrip=True)]
    toks = {
        "deepseek": train_hf(deepseek_pretok(), 2000, ds_added),
        "gpt2": train_hf(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), 1000,
                         [at("<|endoftext|>", True)]),
        "mixed": train_hf(pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"), "isolated"),
            pre_tokenizers.Split("==", "removed"),
            pre_tokenizers.Split(Regex(r"\h\h+"), "merged_with_previous"),
            pre_tokenizers.Split(Regex(r"_"), "merged_with_next"),
            pre_tokenizers.Split(Regex(r"[aeiou]"), "contiguous", invert=True),
            pre_tokenizers.Split(Regex(r"x$|^y"), "isolated"),
            pre_tokenizers.Split(Regex(r"\w+[²³]"), "isolated"),
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)]), 800,
            [at("<|endoftext|>", True)]),
    }
    for name, tok in toks.items():
        tok.save(os.path.join(OUT, name + ".json"))
        dump("expected_%s.json" % name, expected(tok, texts, rng))
    dump("tiny_bpe.json", tiny_variants())
    dump("invalid_utf8.json", {"deepseek": invalid_cases(toks["deepseek"]), "gpt2": invalid_cases(toks["gpt2"])})

    # the C trainer's output must load in HF and encode like the C encoder
    crucible = os.path.join(ROOT, "build", "crucible")
    if not os.path.exists(crucible):
        sys.exit("build/crucible not found: run `make` first")
    out = os.path.join(OUT, "crucible_trained.json")
    subprocess.run([crucible, "tokenizer", "train", "--corpus", os.path.join(OUT, "corpus.txt"),
                    "--vocab-size", "600", "--out", out], check=True)
    tok = Tokenizer.from_file(out)
    dump("expected_crucible_trained.json", expected(tok, texts, rng))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
