#!/usr/bin/env python3
"""Regenerate tests/fixtures/data/chat_*.json: the reference for data/chat.c
(DeepSeek-Coder-V2 chat template and FIM, spec/deepseek-v2.md §10.4-10.5).

  python3 tests/reference/make_chat_fixtures.py      (from the repo root)

chat_tokenizer.json  a small byte-level BPE (HF `tokenizers` BpeTrainer, vocab 1200) with
                     DeepSeek-V2's exact pre-tokenizer (code points of spec §10.2) and the five
                     DeepSeek special tokens appended after the BPE vocabulary (same strings as
                     ids 100000..100004 of the real one), trained on HumanEval + the chats below.
chat_expected.json   for each conversation: HF transformers `apply_chat_template(tokenize=True)`
                     ids with the Coder-V2-Instruct template (verbatim from the spec), and the
                     assistant loss mask derived from HF token offsets (a token is a target when
                     its trimmed character span overlaps an assistant reply, or it is the EOS
                     closing one); for each FIM case: HF encoding of the PSM string and the mask
                     of middle + EOS.
"""
import gzip, json, os, sys

from tokenizers import Tokenizer, Regex, AddedToken, models, pre_tokenizers, decoders, trainers
from transformers import PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "data")
HUMANEVAL = "/work/shared/datasets/HumanEval.jsonl.gz"

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


def deepseek_pretok():
    iso = "isolated"
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("[\r\n]"), iso),
        pre_tokenizers.Split(Regex("\\s?[" + cls(LETTERS) + "]+"), iso),
        pre_tokenizers.Split(Regex("\\s?[" + cls("0021-002F 003A-007E FF01-FF0F FF1A-FF5E 2018-201F 3000-3002".split()) + "]+"), iso),
        pre_tokenizers.Split(Regex("\\s+$"), iso),
        pre_tokenizers.Split(Regex("[" + cls("4E00-9FA5 0800-4E00 AC00-D7FF".split()) + "]+"), iso),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
FIM_HOLE, FIM_BEGIN, FIM_END = "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"
TEMPLATE = ("{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
            "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
            "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
            "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
            "{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")

CONVS = [
    ([("system", "You are a careful C programmer."), ("user", "Write a function that adds two ints."),
      ("assistant", "int add(int a, int b) {\n    return a + b;\n}")], False),
    ([("user", "What is 12 + 30?"), ("assistant", "42"), ("user", "And times 2?"), ("assistant", "84, because 42 * 2 = 84.")], False),
    ([("user", "Sort a list in Python.")], True),
    ([("user", "Give a code block."), ("assistant", "\n```python\ndef f(x):\n    return sorted(x)\n```\n")], False),
    ([("user", "spaces"), ("assistant", "  two leading spaces"), ("user", "punct"), ("assistant", "(a, b) -> [b, a]")], False),
    ([("user", "Unicode: 你好, Grüße, émoji 🚀 and ΑΒΓ."), ("assistant", "回答: ok 🚀 ∑ 123")], False),
    ([("system", "sys  "), ("user", "trailing space and newlines  \n\n"), ("assistant", ""), ("user", "again")], True),
    ([("user", "tabs\there"), ("assistant", "\tindented\n\n\nthree newlines"), ("assistant", "second reply in a row")], False),
]
FIMS = [
    ("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n", "return a + b"),
    ("", "}\n", "int main(void) {\n    return 0;\n"),
    ("x = [1, 2", "]\n", ""),
    ("# 中文注释\ndef f():\n", "", "    pass  # 🚀\n"),
]


def main():
    corpus = []
    with gzip.open(HUMANEVAL, "rt") as f:
        for line in f:
            d = json.loads(line)
            corpus += [d["prompt"], d["canonical_solution"]]
    for msgs, _ in CONVS:
        corpus += ["User: " + c if r == "user" else "Assistant: " + c for r, c in msgs]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = deepseek_pretok()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False)
                            for s in (BOS, EOS, FIM_HOLE, FIM_BEGIN, FIM_END)])
    os.makedirs(OUT, exist_ok=True)
    tok_path = os.path.join(OUT, "chat_tokenizer.json")
    tok.save(tok_path)
    tok = Tokenizer.from_file(tok_path)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS)
    hf.chat_template = TEMPLATE
    eos_id = tok.token_to_id(EOS)

    chats = []
    for msgs, gen in CONVS:
        messages = [{"role": r, "content": c} for r, c in msgs]
        ids = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        ids = list(ids)
        # rebuild the rendered text with the character spans of the assistant replies
        text, spans = BOS, []
        for r, c in msgs:
            if r == "user":
                text += "User: " + c + "\n\n"
            elif r == "system":
                text += c + "\n\n"
            else:
                text += "Assistant: "
                spans.append((len(text), len(text) + len(c)))
                text += c
                spans.append(("eos", len(text)))
                text += EOS
        if gen:
            text += "Assistant:"
        assert text == hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        enc = tok.encode(text, add_special_tokens=False)
        assert enc.ids == ids, "apply_chat_template ids differ from encoding the rendered text"
        eos_starts = {s[1] for s in spans if s[0] == "eos"}
        reply = [s for s in spans if s[0] != "eos"]
        mask = []
        for tid, (a, b) in zip(enc.ids, enc.offsets):
            m = 0
            if tid == eos_id and a in eos_starts:
                m = 1
            elif any(a < e and b > s for s, e in reply):
                m = 1
            mask.append(m)
        chats.append({"messages": messages, "add_generation_prompt": gen, "text": text, "ids": ids, "loss": mask})
    fims = []
    for p, s, m in FIMS:
        text = BOS + FIM_BEGIN + p + FIM_HOLE + s + FIM_END
        prompt_ids = tok.encode(text, add_special_tokens=False).ids
        full = tok.encode(text + m + EOS, add_special_tokens=False).ids
        assert full[:len(prompt_ids)] == prompt_ids
        fims.append({"prefix": p, "suffix": s, "middle": m, "ids": full, "prompt_ids": prompt_ids,
                     "loss": [0] * len(prompt_ids) + [1] * (len(full) - len(prompt_ids))})
    with open(os.path.join(OUT, "chat_expected.json"), "w") as f:
        json.dump({"bos": tok.token_to_id(BOS), "eos": eos_id, "chats": chats, "fims": fims}, f,
                  ensure_ascii=False, indent=0)
    print("wrote", tok_path, "and chat_expected.json;", len(chats), "chats,", len(fims), "fims")


if __name__ == "__main__":
    sys.exit(main())
