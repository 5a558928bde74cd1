#!/usr/bin/env python3
"""Peer side of bench/tokenizer.c (HF `tokenizers`, one thread).

  tokenizer_hf.py prepare DIR   write DIR/corpus.bin (documents: Python stdlib + C headers + the
                                multilingual test corpus, ~4 MB, NUL-separated) and DIR/deepseek.json and
                                DIR/gpt2.json (byte-level BPE trained by HF, up to 32,000 tokens,
                                DeepSeek-V2's pre-tokenizer / the GPT-2 ByteLevel regex)
  tokenizer_hf.py encode T.json CORPUS   encode every document with Tokenizer.encode (no batching,
                                add_special_tokens=False), best of 3; print JSON {mb_s, n_ids, checksum}
"""
import glob, json, os, sys, time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer, models, normalizers, decoders, trainers, pre_tokenizers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))


def prepare(d):
    import make_tokenizer_fixtures as fx
    os.makedirs(d, exist_ok=True)
    docs, total = [], 0
    files = sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True))[:4000:3] + \
        sorted(glob.glob("/usr/include/**/*.h", recursive=True))[:3000:2]
    multi = open(os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.txt"), encoding="utf-8").read()
    for i, f in enumerate(files):
        if total > 4_000_000:
            break
        try:
            t = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        if not t or "\0" in t:
            continue
        docs.append(t)
        total += len(t.encode())
        if i % 50 == 0:
            docs.append(multi)
            total += len(multi.encode())
    with open(os.path.join(d, "corpus.bin"), "wb") as f:
        f.write(b"\0".join(x.encode() for x in docs))
    for name, pre in (("deepseek", fx.deepseek_pretok()),
                      ("gpt2", pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))):
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.Sequence([])
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=32000, min_frequency=2, show_progress=False,
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                 special_tokens=fx.DEEPSEEK_SPECIAL)
        tok.train_from_iterator(docs, tr)
        tok.save(os.path.join(d, name + ".json"))
        print(json.dumps({"tokenizer": name, "docs": len(docs), "bytes": total, "vocab": tok.get_vocab_size()}))


def encode(tpath, cpath):
    tok = Tokenizer.from_file(tpath)
    raw = open(cpath, "rb").read()
    docs = [x.decode("utf-8") for x in raw.split(b"\0")]
    nbytes = sum(len(x.encode()) for x in docs)
    best, ids_all = 1e9, None
    for _ in range(3):
        t0 = time.perf_counter()
        out = [tok.encode(x, add_special_tokens=False).ids for x in docs]
        best = min(best, time.perf_counter() - t0)
        ids_all = out
    n = sum(len(x) for x in ids_all)
    cs = 0
    for x in ids_all:
        for i in x:
            cs = (cs * 31 + i) % 1000000007
    print(json.dumps({"mb_s": nbytes / best / 1e6, "n_ids": n, "checksum": cs, "seconds": best}))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    else:
        encode(sys.argv[2], sys.argv[3])
