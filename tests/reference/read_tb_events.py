#!/usr/bin/env python3
"""Check that TensorBoard itself reads the event files core/tensorboard.c writes.

Builds a tiny C driver against build/libcrucible.a (run `make` first), lets it write
DIR/events.out.tfevents.* through tb_open/tb_scalar/tb_close, then reads the directory
with the `tensorboard` PyPI package (pip install tensorboard):
  1. tensorboard.backend.event_processing.event_file_loader.EventFileLoader — the raw
     record reader (checks framing + CRCs and parses tensorflow.Event), and
  2. EventAccumulator — what the TensorBoard UI uses to serve scalars.
Exits non-zero on any mismatch. Not part of `make test` (CI need not have tensorboard).

usage: python3 tests/reference/read_tb_events.py [OUTDIR]
"""
import glob, os, subprocess, sys, tempfile

DRIVER = r'''
#include "core/tensorboard.h"
#include <stdio.h>
int main(int argc, char **argv) {
    CrError e;
    TbWriter *w = tb_open(argv[1], &e);
    if (!w) { fprintf(stderr, "%s\n", e.msg); return 1; }
    for (long s = 0; s < 50; s++) {
        if (tb_scalar(w, "reward/mean", s, 1.7e9 + s, (float)(0.01 * s)) ||
            tb_scalar(w, "loss/policy", s, 1.7e9 + s, (float)(1.0 / (s + 1)))) { fprintf(stderr, "%s\n", tb_error(w)); return 1; }
    }
    return tb_close(w) ? 1 : 0;
}
'''

def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="crucible-tb-")
    src = os.path.join(out, "tb_driver.c")
    exe = os.path.join(out, "tb_driver")
    os.makedirs(out, exist_ok=True)
    with open(src, "w") as f:
        f.write(DRIVER)
    subprocess.run(["gcc", "-std=c17", "-D_GNU_SOURCE", "-I" + root, src, os.path.join(root, "build/libcrucible.a"),
                    "-lm", "-o", exe], check=True)
    logdir = os.path.join(out, "tb")
    subprocess.run([exe, logdir], check=True)

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import tensorboard

    files = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    assert len(files) == 1, files
    events = list(EventFileLoader(files[0]).Load())
    assert events[0].file_version == "brain.Event:2", events[0]
    scalars = [(e.step, v.tag, v.simple_value) for e in events[1:] for v in e.summary.value]
    assert len(scalars) == 100, len(scalars)

    acc = EventAccumulator(logdir)
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    assert tags == ["loss/policy", "reward/mean"], tags
    rm = acc.Scalars("reward/mean")
    lp = acc.Scalars("loss/policy")
    assert [s.step for s in rm] == list(range(50))
    for s in range(50):
        assert abs(rm[s].value - 0.01 * s) < 1e-6 and abs(lp[s].value - 1.0 / (s + 1)) < 1e-6
        assert rm[s].wall_time == 1.7e9 + s
    print(f"tensorboard {tensorboard.__version__}: read {files[0]}: file_version {events[0].file_version}, "
          f"{len(events)} events, tags {tags}, {len(rm)}+{len(lp)} scalars match")

if __name__ == "__main__":
    main()
