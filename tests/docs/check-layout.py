#!/usr/bin/python3
"""check-layout.py: the README's "Layout" section against the tree.

    check-layout.py SOURCE

The first fenced block after "## Layout" lists the top-level folders at the
start of a line ("engine/   what ...") and, indented, the folders inside the
one above ("  nn/   what ...").  Every folder listed must exist; every
top-level folder of the tree (the files git tracks, or would: ignored build
folders do not count) must be listed, and so must every folder inside a
top-level folder whose folders the list goes into.
"""
import os
import re
import subprocess
import sys

src = sys.argv[1]
text = open(os.path.join(src, "README.md"), encoding="utf-8").read()
m = re.search(r"^## Layout\n.*?^```[^\n]*\n(.*?)^```", text, re.S | re.M)
if not m:
    sys.exit("FAILED: README.md has no Layout block")

listed = {}                     # top folder -> set of its listed folders
top = None
for line in m.group(1).split("\n"):
    t = re.match(r"^(\S+)/\s", line + " ")
    s = re.match(r"^  (\S+)/\s", line + " ")
    if t:
        top = t.group(1)
        listed[top] = set()
    elif s and top:
        listed[top].add(s.group(1))

try:
    files = subprocess.run(["git", "-C", src, "ls-files", "--cached", "--others",
                            "--exclude-standard"], check=True, stdout=subprocess.PIPE,
                           text=True).stdout.split("\n")
except (OSError, subprocess.CalledProcessError):
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build"))]
        files += [os.path.relpath(os.path.join(root, n), src) for n in names]
files = [f for f in files if f and os.path.exists(os.path.join(src, f))]
tree = {}
for f in files:
    parts = f.split("/")
    if len(parts) < 2 or parts[0].startswith("."):
        continue
    tree.setdefault(parts[0], set())
    if len(parts) > 2:
        tree[parts[0]].add(parts[1])

failures = []
for d, subs in listed.items():
    if d not in tree:
        failures.append("listed but not in the tree: %s/" % d)
    for s in sorted(subs):
        if not os.path.isdir(os.path.join(src, d, s)):
            failures.append("listed but not in the tree: %s/%s/" % (d, s))
for d in sorted(tree):
    if d not in listed:
        failures.append("in the tree but not listed: %s/" % d)
    elif listed[d]:
        for s in sorted(tree[d] - listed[d]):
            failures.append("in the tree but not listed: %s/%s/" % (d, s))

for f in failures:
    print("FAILED: " + f)
print("layout: %d top-level folders, %d folders inside them; %d differences"
      % (len(listed), sum(len(s) for s in listed.values()), len(failures)))
sys.exit(1 if failures else 0)
