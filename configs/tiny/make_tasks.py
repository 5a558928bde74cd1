#!/usr/bin/env python3
"""Generate the embedded demo's programming tasks (committed output; run again to regenerate).

Small stdin/stdout tasks in C and Python from a few families with integer/word parameters,
each with a reference solution and three tests. Split at random (fixed seed) into train
(used for SFT and GRPO) and held-out (only evaluated). Deterministic: same files every run.

    python3 configs/tiny/make_tasks.py   # writes tasks_train.jsonl, tasks_heldout.jsonl, sft.jsonl, corpus.txt
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(1234)
noise_rng = random.Random(99)   # separate stream: the tasks, tests and split do not depend on it
SFT_NOISE = 0.3

WORDS = ["apple", "river", "stone", "cloud", "green", "tiger", "music", "paper", "light", "sugar",
         "bread", "chair", "dream", "earth", "flame", "grape", "house", "juice", "knife", "lemon",
         "mouse", "night", "ocean", "piano", "queen", "robot", "snake", "table", "under", "voice"]


def c_prog(body, decl="long a, b;", read='if (scanf("%ld %ld", &a, &b) != 2) return 1;'):
    return "#include <stdio.h>\nint main(void) {\n    %s\n    %s\n    %s\n    return 0;\n}\n" % (decl, read, body)


def family_tasks():
    out = []
    for k in range(2, 100):
        out.append(dict(fam="add", k=k,
                        text="reads an integer n and prints n + %d" % k,
                        py="n = int(input())\nprint(n + %d)\n" % k,
                        c=c_prog('printf("%%ld\\n", n + %d);' % k, "long n;", 'if (scanf("%ld", &n) != 1) return 1;'),
                        f=lambda x, k=k: x + k, arity=1,
                        bad_py="n = int(input())\nprint(n + %d)\n" % (k + 1),
                        bad_c=c_prog('printf("%%ld\\n", n + %d);' % (k + 1), "long n;", 'if (scanf("%ld", &n) != 1) return 1;')))
        out.append(dict(fam="mul", k=k,
                        text="reads an integer n and prints n * %d" % k,
                        py="n = int(input())\nprint(n * %d)\n" % k,
                        c=c_prog('printf("%%ld\\n", n * %d);' % k, "long n;", 'if (scanf("%ld", &n) != 1) return 1;'),
                        f=lambda x, k=k: x * k, arity=1,
                        bad_py="n = int(input())\nprint(n * %d)\n" % (k + 1),
                        bad_c=c_prog('printf("%%ld\\n", n * %d);' % (k + 1), "long n;", 'if (scanf("%ld", &n) != 1) return 1;')))
        out.append(dict(fam="sub", k=k,
                        text="reads an integer n and prints n - %d" % k,
                        py="n = int(input())\nprint(n - %d)\n" % k,
                        c=c_prog('printf("%%ld\\n", n - %d);' % k, "long n;", 'if (scanf("%ld", &n) != 1) return 1;'),
                        f=lambda x, k=k: x - k, arity=1,
                        bad_py="n = int(input())\nprint(n - %d)\n" % (k + 1),
                        bad_c=c_prog('printf("%%ld\\n", n - %d);' % (k + 1), "long n;", 'if (scanf("%ld", &n) != 1) return 1;')))
    for name, op, pyexpr, cexpr in [("sum", "the sum", "a + b", "a + b"),
                                    ("diff", "the difference a - b", "a - b", "a - b"),
                                    ("prod", "the product", "a * b", "a * b"),
                                    ("max", "the larger one", "max(a, b)", "a > b ? a : b"),
                                    ("min", "the smaller one", "min(a, b)", "a < b ? a : b")]:
        f = {"sum": lambda a, b: a + b, "diff": lambda a, b: a - b, "prod": lambda a, b: a * b,
             "max": max, "min": min}[name]
        out.append(dict(fam=name, k=0,
                        text="reads two integers a and b and prints %s" % op,
                        py="a, b = map(int, input().split())\nprint(%s)\n" % pyexpr,
                        c=c_prog('printf("%%ld\\n", %s);' % cexpr),
                        f=f, arity=2))
    for w in WORDS:
        for k in range(1, 5):
            out.append(dict(fam="word", k=k, w=w,
                            text="prints the word \"%s\" %d time%s, one per line" % (w, k, "s" if k > 1 else ""),
                            py="for _ in range(%d):\n    print(\"%s\")\n" % (k, w),
                            c=c_prog('for (int i = 0; i < %d; i++) printf("%s\\n");' % (k, w), "", ""),
                            f=None, arity=0,
                            bad_py="for _ in range(%d):\n    print(\"%s\")\n" % (k + 1, w),
                            bad_c=c_prog('for (int i = 0; i < %d; i++) printf("%s\\n");' % (k + 1, w), "", "")))
    return out


def tests_for(t):
    tests = []
    for _ in range(3):
        if t["arity"] == 1:
            x = rng.randint(-50, 99)
            tests.append({"stdin": "%d\n" % x, "stdout": "%d\n" % t["f"](x)})
        elif t["arity"] == 2:
            a, b = rng.randint(-50, 99), rng.randint(-50, 99)
            tests.append({"stdin": "%d %d\n" % (a, b), "stdout": "%d\n" % t["f"](a, b)})
        else:
            tests.append({"stdin": "", "stdout": (t["w"] + "\n") * t["k"]})
    return tests


def main():
    tasks = []
    for t in family_tasks():
        for lang in ("python", "c"):
            lname = "Python" if lang == "python" else "C"
            prompt = "Write a %s program that %s." % (lname, t["text"])
            sol = t["py"] if lang == "python" else t["c"]
            tid = "tiny/%s/%s/%s%s" % (lang, t["fam"], t.get("w", ""), t["k"])
            task = {"id": tid, "language": lang, "prompt": prompt, "tests": tests_for(t),
                    "solution": "```%s\n%s```" % (lang, sol)}
            # The SFT reference is wrong by one (constant or count) for SFT_NOISE of the tasks that
            # have such a variant, like mined solutions that were never run: SFT learns the
            # mixture; compiler feedback is what can tell the two apart.
            bad = t.get("bad_py" if lang == "python" else "bad_c")
            task["_sft"] = ("```%s\n%s```" % (lang, bad)) if bad and noise_rng.random() < SFT_NOISE else task["solution"]
            tasks.append(task)
    rng.shuffle(tasks)
    # Held out: 48 tasks never trained on (the demo's before/after pass@1 is measured on them).
    n_held = 48
    held, train = tasks[:n_held], tasks[n_held:]
    sft_solution = {t["id"]: t.pop("_sft") for t in tasks}
    with open(os.path.join(HERE, "tasks_train.jsonl"), "w") as f:
        for t in train:
            f.write(json.dumps(t) + "\n")
    with open(os.path.join(HERE, "tasks_heldout.jsonl"), "w") as f:
        for t in held:
            f.write(json.dumps(t) + "\n")
    with open(os.path.join(HERE, "sft.jsonl"), "w") as f:
        for t in train:
            f.write(json.dumps({"messages": [{"role": "user", "content": t["prompt"]},
                                             {"role": "assistant", "content": sft_solution[t["id"]]}]}) + "\n")
    # Tokenizer corpus: the rendered chat turns of the training tasks.
    with open(os.path.join(HERE, "corpus.txt"), "w") as f:
        for t in train:
            f.write("User: %s\n\nAssistant: %s\n" % (t["prompt"], sft_solution[t["id"]]))
    print("train %d, held-out %d" % (len(train), len(held)))


if __name__ == "__main__":
    main()
