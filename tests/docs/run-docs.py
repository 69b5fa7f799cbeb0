#!/usr/bin/python3
"""run-docs.py: runs the commands the documentation shows, as written.

    run-docs.py --source SRC --build BUILD [--meson MESON] [--keep] DOC.md ...

From each Markdown file it takes the fenced code blocks and runs, in the
order they appear, every command line (continuation lines joined) that
starts, after optional VAR=value assignments, with

    gst-launch-1.0 / gst-inspect-1.0       the GStreamer tools
    pipelines/NAME.sh, pipelines/NAME.py   the recipes and the Python app
    build/tools/NAME, build/pipelines/NAME the programs of the build tree
    gansynth-clean                         the installed tool (on PATH here)

and it compiles and runs every ```c block (a whole program, built with
"pkg-config generative-engine").  Any other line (tools/demo.sh, meson,
kubectl ...) is listed as not run, never silently.

Where.  Every command runs inside "meson devenv -C BUILD" (the uninstalled
environment the README tells users to use), in one scratch folder per
document that looks like the source folder: pipelines/, samples/, models/,
tests/ ... link to the source tree, build/ to BUILD.  So a README line runs
exactly as a user types it at the top of a checkout, and what one command
writes (bw.webm) is there for the next (colorize.sh bw.webm ...).  A command
passes when it exits 0 and leaves no empty file behind.

Inputs.  The examples name the user's files (in.png, clip.webm ...): the
scratch folder links each such name to a bundled sample (PLACEHOLDERS
below; in.wav is made from the speech sample).  A block can add its own
names, e.g. a tiny pipeline folder of the test fixtures, with a comment on
a line of its own before the block:

    <!-- files: sd-model=tests/fixtures/diffusers/some_small_pipeline -->

Screens, speakers, live sources.  gst-launch-1.0 is reached through a
wrapper (first on PATH, so the recipes' own calls go through it too) that
replaces video and audio sinks with fakesink, microphones with a live
audiotestsrc, and gives videotestsrc / audiotestsrc a num-buffers when they
have none, printing each replacement.

Markers (an HTML comment on its own line before a block; blank lines and
other markers may come between):

    <!-- needs: REASON -->   the block is not run; each of its commands is
                             printed as skipped with REASON (e.g. "needs:
                             download" for a model fetched from the network,
                             "needs: a Slurm cluster")
    <!-- args: A B -->       the arguments of a ```c program (paths relative
                             to the source folder)
    <!-- files: N=P ... -->  names to link in the scratch folder (see above)

Exit status: 0 when every command run passed and at least one ran.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

# The user's files the examples name -> the bundled samples (source-relative).
PLACEHOLDERS = {
    "in.png": "samples/butterfly.png",
    "photo.png": "samples/butterfly.png",
    "mask.png": "samples/butterfly-mask.png",
    "clip.webm": "samples/building.webm",
    "in.webm": "samples/building.webm",
    "logo-mask.png": "samples/building-logo-mask.png",
    "podcast.ogg": "samples/noisy-speech.ogg",
    "mine.safetensors": "models/img2img/diffusionimg2img.safetensors",
}
# Made at the start from a sample (a WAV the command-line tool reads).
MADE = {
    "in.wav": "filesrc location=samples/noisy-speech.ogg ! decodebin ! audioconvert "
              "! audio/x-raw,format=S16LE ! wavenc ! filesink location=in.wav",
}
# What the scratch folder links from the source folder.
SOURCE_LINKS = ("pipelines", "samples", "models", "tests", "tools", "engine",
                "plugins", "docs", "bench", "fuzz", "README.md")

RUNNABLE = [
    re.compile(r"^gst-(launch|inspect)-1\.0(\s|$)"),
    re.compile(r"^pipelines/[\w.-]+\.(sh|py)(\s|$)"),
    re.compile(r"^build/(tools|pipelines)/[\w.-]+(\s|$)"),
    re.compile(r"^gansynth-clean(\s|$)"),
]
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*\s+")
MARKER = re.compile(r"^\s*<!--\s*(needs|args|files)\s*:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
SHELL_LANGS = ("sh", "bash", "shell", "console")

# The gst-launch-1.0 wrapper: sinks that need a screen or a speaker become
# fakesink, microphones a live test source, endless test sources get an end.
WRAPPER = r'''#!/usr/bin/python3
import os, sys
SINKS = {"autovideosink", "xvimagesink", "ximagesink", "glimagesink",
         "waylandsink", "kmssink", "fbdevsink", "autoaudiosink", "pulsesink",
         "alsasink", "pipewiresink", "jackaudiosink"}
MICS = {"autoaudiosrc", "pulsesrc", "alsasrc", "pipewiresrc", "jackaudiosrc"}
ENDLESS = {"videotestsrc": "num-buffers=10", "audiotestsrc": "num-buffers=50"}
args, notes = [], []
argv = sys.argv[1:]
i = 0
while i < len(argv):
    a = argv[i]
    if a in SINKS:
        args.append("fakesink")
        notes.append("%s -> fakesink" % a)
    elif a in MICS:
        args += ["audiotestsrc", "is-live=true", "wave=pink-noise"]
        notes.append("%s -> audiotestsrc is-live=true wave=pink-noise" % a)
        a = "audiotestsrc"
    else:
        args.append(a)
    if a in ENDLESS:
        j = i + 1
        while j < len(argv) and "=" in argv[j] and argv[j] != "!":
            j += 1
        if not any(p.startswith("num-buffers=") for p in argv[i + 1:j]):
            args.append(ENDLESS[a])
            notes.append("%s given %s" % (a, ENDLESS[a]))
    i += 1
for n in notes:
    sys.stderr.write("docs-test: %s\n" % n)
os.execv(os.environ["GE_DOCS_GST_LAUNCH"], ["gst-launch-1.0"] + args)
'''


class Block:
    def __init__(self, doc, line, lang, text, markers):
        self.doc, self.line, self.lang, self.text = doc, line, lang, text
        self.markers = markers


def parse_blocks(path):
    """The fenced blocks of a Markdown file with the markers before them."""
    blocks, markers = [], {}
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        f = FENCE.match(lines[i])
        if m:
            markers[m.group(1)] = m.group(2)
        elif f:
            fence, lang = f.group(2), f.group(3).lower()
            start = i + 1
            i += 1
            body = []
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            blocks.append(Block(path, start, lang, "\n".join(body), markers))
            markers = {}
        elif lines[i].strip():
            markers = {}        # a marker belongs to the block right after it
        i += 1
    return blocks


def commands(text):
    """Command lines of a shell block: continuations joined, comments and
    blank lines dropped; (first line number in the block, command)."""
    out, cur, first = [], "", None
    for n, raw in enumerate(text.split("\n")):
        line = raw.rstrip()
        if first is None:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            first = n
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        out.append((first, cur.strip()))
        cur, first = "", None
    if cur.strip():
        out.append((first, cur.strip()))
    return out


def runnable(cmd):
    rest = cmd
    while ASSIGNMENT.match(rest):
        rest = ASSIGNMENT.sub("", rest, count=1)
    return any(r.match(rest) for r in RUNNABLE)


class Runner:
    def __init__(self, args):
        self.args = args
        self.source = os.path.abspath(args.source)
        self.build = os.path.abspath(args.build)
        self.meson = args.meson or shutil.which("meson")
        self.results = []       # (status, where, cmd, note)
        self.wrap = tempfile.mkdtemp(prefix="ge-docs-bin-")
        with open(os.path.join(self.wrap, "gst-launch-1.0"), "w") as f:
            f.write(WRAPPER)
        os.chmod(os.path.join(self.wrap, "gst-launch-1.0"), 0o755)
        self.gst_launch = shutil.which("gst-launch-1.0")
        if not self.gst_launch or not self.meson:
            sys.exit("run-docs: gst-launch-1.0 and meson must be on PATH")

    def scratch(self):
        work = tempfile.mkdtemp(prefix="ge-docs-")
        for name in SOURCE_LINKS:
            if os.path.exists(os.path.join(self.source, name)):
                os.symlink(os.path.join(self.source, name), os.path.join(work, name))
        os.symlink(self.build, os.path.join(work, "build"))
        for name, target in PLACEHOLDERS.items():
            os.symlink(os.path.join(self.source, target), os.path.join(work, name))
        for name, pipeline in MADE.items():
            r = self.devenv(work, "gst-launch-1.0 -q " + pipeline, timeout=120)
            if r.returncode != 0:
                sys.exit("run-docs: could not make %s:\n%s" % (name, r.stdout))
        return work

    def link_files(self, work, spec):
        for item in shlex.split(spec):
            name, _, target = item.partition("=")
            dest = os.path.join(work, name)
            if os.path.lexists(dest):
                os.unlink(dest)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.symlink(os.path.join(self.source, target), dest)

    def devenv(self, work, cmd, timeout):
        env = dict(os.environ, GE_DOCS_GST_LAUNCH=self.gst_launch)
        script = 'export PATH="%s:$PATH"\n%s\n' % (self.wrap, cmd)
        try:
            return subprocess.run([self.meson, "devenv", "-C", self.build, "-w", work,
                                   "bash", "-eo", "pipefail", "-c", script],
                                  cwd=work, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout or ""
            if isinstance(out, bytes):
                out = out.decode(errors="replace")
            return subprocess.CompletedProcess(e.cmd, 124, out + "\n(timed out)")

    @staticmethod
    def files(work):
        found = {}
        for root, dirs, names in os.walk(work):
            # the links into the source and build trees are not ours
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
            for n in names:
                p = os.path.join(root, n)
                if not os.path.islink(p):
                    st = os.stat(p)
                    found[p] = (st.st_size, st.st_mtime_ns)
        return found

    def run_one(self, work, where, cmd):
        before = self.files(work)
        t0 = time.monotonic()
        r = self.devenv(work, cmd, self.args.timeout)
        dt = time.monotonic() - t0
        after = self.files(work)
        empty = [os.path.relpath(p, work) for p, (size, _) in after.items()
                 if size == 0 and before.get(p) != after[p]]
        ok = r.returncode == 0 and not empty
        note = "%.1f s" % dt
        if r.returncode != 0:
            note += ", exit status %d" % r.returncode
        if empty:
            note += ", left empty: " + " ".join(empty)
        self.report("PASS" if ok else "FAIL", where, cmd, note)
        if not ok or self.args.verbose:
            for line in r.stdout.rstrip().split("\n")[-40:]:
                print("    | " + line)

    def run_c(self, work, block, where):
        name = "snippet-%d" % block.line
        src = os.path.join(work, name + ".c")
        with open(src, "w") as f:
            f.write(block.text + "\n")
        args = " ".join(shlex.quote(a) for a in shlex.split(block.markers.get("args", "")))
        cmd = ('cc -std=gnu11 -Wall -Werror %s.c -o %s $(pkg-config --cflags --libs '
               'generative-engine) && ./%s %s' % (name, name, name, args))
        self.run_one(work, where, cmd)

    def report(self, status, where, cmd, note):
        self.results.append((status, where, cmd, note))
        short = cmd if len(cmd) <= 110 else cmd[:107] + "..."
        print("%-4s %s: %s  (%s)" % (status, where, short, note), flush=True)

    def run_doc(self, doc):
        path = os.path.join(self.source, doc)
        work = self.scratch()
        print("== %s (in %s)" % (doc, work), flush=True)
        for block in parse_blocks(path):
            where_b = "%s:%d" % (doc, block.line)
            if "files" in block.markers:
                self.link_files(work, block.markers["files"])
            needs = block.markers.get("needs")
            if block.lang == "c":
                if needs:
                    self.report("SKIP", where_b, "the C program", "needs: " + needs)
                else:
                    self.run_c(work, block, where_b)
                continue
            # A block without a language may hold a command too (its other
            # lines are output, caps, a folder list: not listed as not run).
            if block.lang not in SHELL_LANGS and block.lang != "":
                continue
            for n, cmd in commands(block.text):
                where = "%s:%d" % (doc, block.line + n)
                if not runnable(cmd):
                    if block.lang:
                        self.results.append(("NOT RUN", where, cmd, ""))
                elif needs:
                    self.report("SKIP", where, cmd, "needs: " + needs)
                else:
                    self.run_one(work, where, cmd)
        if not self.args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def summary(self):
        counts = {}
        for status, *_ in self.results:
            counts[status] = counts.get(status, 0) + 1
        not_run = [(w, c) for s, w, c, _ in self.results if s == "NOT RUN"]
        if not_run:
            print("\nNot run (not a gst-launch-1.0 / gst-inspect-1.0 line, a recipe or a "
                  "program of the build tree):")
            for where, cmd in not_run:
                print("  %s: %s" % (where, cmd if len(cmd) <= 100 else cmd[:97] + "..."))
        skipped = [(w, c, n) for s, w, c, n in self.results if s == "SKIP"]
        if skipped:
            print("\nSkipped (marked in the document):")
            for where, cmd, note in skipped:
                print("  %s: %s (%s)" % (where, cmd[:90], note))
        failed = [(w, c) for s, w, c, _ in self.results if s == "FAIL"]
        print("\n%d passed, %d failed, %d skipped, %d not run" % (
            counts.get("PASS", 0), counts.get("FAIL", 0), counts.get("SKIP", 0),
            counts.get("NOT RUN", 0)))
        for where, cmd in failed:
            print("FAILED %s: %s" % (where, cmd))
        if counts.get("PASS", 0) + counts.get("FAIL", 0) == 0:
            print("FAILED: nothing was run")
            return 1
        return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--meson")
    p.add_argument("--timeout", type=int, default=300, help="seconds per command")
    p.add_argument("--keep", action="store_true", help="keep the scratch folders")
    p.add_argument("-v", "--verbose", action="store_true", help="show every command's output")
    p.add_argument("docs", nargs="+", help="Markdown files, relative to --source")
    args = p.parse_args()
    runner = Runner(args)
    try:
        for doc in args.docs:
            runner.run_doc(doc)
    finally:
        shutil.rmtree(runner.wrap, ignore_errors=True)
    sys.exit(runner.summary())


if __name__ == "__main__":
    main()
