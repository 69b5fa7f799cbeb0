#!/usr/bin/python3
"""Fetches the real speech and noise recordings that Debian packages ship (see the data notes of
the project) and decodes them for the speech-enhancement model (gansynth).

Run from the repository root:
    /usr/bin/python3 models/data/fetch_speech.py [--work _work/data] [--eval-only]

Steps (each skipped when its output exists, so the script is idempotent and resumable):
  1. `apt-get download PKG` into _work/data/debs/
  2. extracts only the audio folders of each package into _work/data/x/<package>/
  3. decodes every clip with ffmpeg to mono int16 at 16 kHz (all clips) and 48 kHz (validation
     and test clips only: the benches run the podcast path) and writes, per package,
     _work/data/audio/<package>.<rate>.npy (the clips end to end) and a clip table in
     _work/data/audio/MANIFEST.json: name, offset, length, speaker or noise group, split.

The validation split is made by SPEAKER and by NOISE PACKAGE, never per clip:
  speech  train: fillets-ng-data-cs's two main voices ('m', 'v'), asterisk en/es/ru, and the
                 word and letter voices of klettres-data, ktuberling-data, kajongg
          val:   asterisk-it (a voice heard nowhere else) and every minor voice of fillets
  noise   train: flightgear-data-base (Sounds/*.wav), 0ad-data (ambient, music), sonic-pi-samples,
                 lmms-common, supertuxkart-data (effects and engines), tuxpaint-data (effects)
          val:   gcompris-qt-data (memory-sound: rain, train, factory, car, applause, door) and
                 wesnoth-1.16-data (effects, ambient, horns)
          test:  kept aside for a blind check (bench/speech_quality.py --noise test): packages
                 outside the data notes' list that the shipped model's runs never trained on
                 (runs 4 and 5, withdrawn, had) and that no training choice looked at:
                 lincity-ng-data (city, industry, traffic), hedgewars-data (effects, without
                 the voice packs), extremetuxracer-data (slides, hits), minetest-data
                 (footsteps, digging, fire, doors)
Needs ffmpeg (g722 and ogg decoding) and python3-numpy.
"""

import argparse
import concurrent.futures
import glob
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rcc  # noqa: E402
from fetch_photos import download  # noqa: E402

RATES = (16000, 48000)
ASTERISK = [f"asterisk-core-sounds-{lang}-g722" for lang in ("en", "es", "it", "ru")]

# package -> (kind, paths to extract from the .deb (tar wildcards))
PACKAGES = {
    "fillets-ng-data-cs": ("speech", ["./usr/share/games/fillets-ng/*"]),
    **{p: ("speech", ["./usr/share/asterisk/*"]) for p in ASTERISK},
    "klettres-data": ("speech", ["./usr/share/klettres/*"]),
    "ktuberling-data": ("speech", ["./usr/share/ktuberling/*"]),
    "kajongg": ("speech", ["./usr/share/kajongg/voices/*"]),
    "flightgear-data-base": ("noise", ["./usr/share/games/flightgear/Sounds/*"]),
    "0ad-data": ("noise", ["./usr/share/games/0ad/mods/public/public.zip"]),
    "sonic-pi-samples": ("noise", ["./usr/share/sonic-pi/*"]),
    "lmms-common": ("noise", ["./usr/share/lmms/samples/*"]),
    "supertuxkart-data": ("noise", ["./usr/share/games/supertuxkart/data/sfx/*"]),
    "gcompris-qt-data": ("noise", ["./usr/share/gcompris-qt/rcc/memory-sound.rcc"]),
    "wesnoth-1.16-data": ("noise", ["./usr/share/games/wesnoth/1.16/data/core/sounds/*",
                                    "./usr/share/games/wesnoth/1.16/sounds/*"]),
    # More effects for training (the packages above are mostly music and loops; the validation
    # noises are effects).  Only packages of the data notes' list: others are kept aside for
    # an independent evaluation (tuxpaint-data is listed for its photos).
    "tuxpaint-data": ("noise", ["./usr/share/tuxpaint/sounds/*"]),
    # the blind test noises
    "lincity-ng-data": ("noise", ["./usr/share/games/lincity-ng/sounds/*"]),
    "hedgewars-data": ("noise", ["./usr/share/games/hedgewars/Data/Sounds/*"]),
    "extremetuxracer-data": ("noise", ["./usr/share/games/etr/sounds/*"]),
    "minetest-data": ("noise", ["./usr/share/games/minetest/games/*"]),
}
VAL_NOISE = {"gcompris-qt-data", "wesnoth-1.16-data"}
TEST_NOISE = {"lincity-ng-data", "hedgewars-data", "extremetuxracer-data", "minetest-data"}
# the packages that hold validation clips (the speakers and noises of the split above)
VAL_PACKAGES = {"fillets-ng-data-cs", "asterisk-core-sounds-it-g722"} | VAL_NOISE
SPLITS = ("train", "val", "test")
FILLETS_TRAIN_VOICES = {"m", "v"}
AUDIO_EXT = (".ogg", ".wav", ".flac", ".g722", ".mp3")
MIN_SECONDS = 0.3


def wanted(pkg, rel):
    """flightgear-data-base: only the .wav files of Sounds/ itself, as the data notes list them;
    its subfolders mk-viii and tcas hold spoken callouts ("terrain", "traffic"), which as noise
    would teach the model to remove voices.  hedgewars-data: not Sounds/voices/ (speech)."""
    if pkg == "flightgear-data-base":
        return os.path.dirname(rel).endswith("/Sounds") and rel.endswith(".wav")
    if pkg == "hedgewars-data":
        return "/voices/" not in rel
    return True


def extract(debs, xdir, packages):
    for pkg, (_kind, paths) in packages.items():
        dst = os.path.join(xdir, pkg)
        stamp = os.path.join(dst, ".audio-extracted")
        if os.path.exists(stamp):
            continue
        (deb,) = glob.glob(os.path.join(debs, pkg + "_*.deb"))
        print("extracting", pkg, flush=True)
        os.makedirs(dst, exist_ok=True)
        # Only the audio folders: flightgear-data-base and 0ad-data are 1.3 GB each.
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", dst, "--wildcards"] + paths, stdin=tar.stdout, check=True)
        if tar.wait() != 0:
            raise RuntimeError(f"dpkg-deb failed on {deb}")
        open(stamp, "w").close()


def _files(root):
    return sorted(p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
                  if p.lower().endswith(AUDIO_EXT) and os.path.isfile(p))


def clips(xdir, pkg):
    """Yields (name, group, split, source) where source is a path or (name, bytes)."""
    root = os.path.join(xdir, pkg)
    kind = PACKAGES[pkg][0]
    if pkg == "0ad-data":
        z = zipfile.ZipFile(glob.glob(os.path.join(root, "**", "public.zip"), recursive=True)[0])
        for n in sorted(z.namelist()):
            if n.startswith(("audio/ambient/", "audio/music/")) and n.lower().endswith(AUDIO_EXT):
                yield n, n.split("/")[1], "train", (n, z.read(n))
        return
    if pkg == "gcompris-qt-data":
        bundle = rcc.Rcc.open(glob.glob(os.path.join(root, "**", "memory-sound.rcc"), recursive=True)[0])
        for n, data in bundle.items(lambda p: p.lower().endswith(AUDIO_EXT)):
            yield n, "memory-sound", "val", (n, data)
        return
    for p in _files(root):
        rel = os.path.relpath(p, root)
        base = os.path.basename(p)
        if not wanted(pkg, rel):
            continue
        if kind == "noise":
            split = "val" if pkg in VAL_NOISE else "test" if pkg in TEST_NOISE else "train"
            yield rel, os.path.dirname(rel), split, p
        elif pkg == "fillets-ng-data-cs":
            parts = base.split("-")
            if "/cs/" not in p or len(parts) < 3:
                continue  # effects and music, not dialogue
            voice = parts[1]
            yield rel, "fillets-" + voice, "train" if voice in FILLETS_TRAIN_VOICES else "val", p
        elif pkg.startswith("asterisk"):
            yield rel, pkg, "val" if pkg.endswith("-it-g722") else "train", p
        else:  # klettres, ktuberling, kajongg: one voice per folder
            yield rel, pkg + ":" + os.path.dirname(rel), "train", p


def decode(source, rate):
    """Mono int16 at @rate with ffmpeg (any format it reads; raw .g722 needs -f g722)."""
    name = source[0] if isinstance(source, tuple) else source
    fmt = ["-f", "g722"] if name.endswith(".g722") else []
    with tempfile.NamedTemporaryFile(suffix=os.path.splitext(name)[1]) as tmp:
        if isinstance(source, tuple):
            tmp.write(source[1])
            tmp.flush()
            path = tmp.name
        else:
            path = source
        r = subprocess.run(["ffmpeg", "-v", "error", "-nostdin"] + fmt + ["-i", path, "-ac", "1", "-ar", str(rate),
                            "-f", "s16le", "-"], capture_output=True)
    if r.returncode != 0:
        return None
    return np.frombuffer(r.stdout, dtype=np.int16)


def convert(xdir, out, pkg, manifest):
    if pkg in manifest:
        return
    items = list(clips(xdir, pkg))
    table, data = [], {rate: [] for rate in RATES}
    offs = {rate: 0 for rate in RATES}

    def job(item):
        name, group, split, source = item
        rates = RATES if split != "train" else RATES[:1]
        return item, {rate: decode(source, rate) for rate in rates}

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for (name, group, split, _), pcm in ex.map(job, items):
            if pcm[16000] is None or len(pcm[16000]) < MIN_SECONDS * 16000:
                continue
            row = {"name": name, "group": group, "split": split}
            for rate, x in pcm.items():
                row[f"offset{rate}"], row[f"length{rate}"] = offs[rate], len(x)
                data[rate].append(x)
                offs[rate] += len(x)
            table.append(row)
    for rate in RATES:
        if data[rate]:
            np.save(os.path.join(out, f"{pkg}.{rate}.npy"), np.concatenate(data[rate]))
    minutes = {s: round(sum(r["length16000"] for r in table if r["split"] == s) / 16000 / 60, 1)
               for s in SPLITS}
    manifest[pkg] = {"kind": PACKAGES[pkg][0], "minutes": minutes, "clips": table}
    print(f"{pkg}: {len(table)} clips, minutes {minutes}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="_work/data")
    ap.add_argument("--eval-only", action="store_true",
                    help="only the packages the benches read (about 470 MB): the validation "
                    "speakers and noises and the blind test noises; not for training")
    args = ap.parse_args()
    packages = ({p: e for p, e in PACKAGES.items() if p in VAL_PACKAGES | TEST_NOISE}
                if args.eval_only else PACKAGES)
    debs, xdir, out = (os.path.join(args.work, d) for d in ("debs", "x", "audio"))
    download(debs, packages)
    extract(debs, xdir, packages)
    os.makedirs(out, exist_ok=True)
    mpath = os.path.join(out, "MANIFEST.json")
    manifest = json.load(open(mpath)) if os.path.exists(mpath) else {}
    # only the packages and files above: a package converted under older rules is converted again
    manifest = {pkg: e for pkg, e in manifest.items()
                if pkg in PACKAGES and all(wanted(pkg, c["name"]) for c in e["clips"])}
    for pkg in packages:
        convert(xdir, out, pkg, manifest)
        with open(mpath + ".tmp", "w") as f:
            json.dump(manifest, f)
        os.replace(mpath + ".tmp", mpath)
    for kind in ("speech", "noise"):
        for split in SPLITS:
            m = sum(v["minutes"].get(split, 0) for v in manifest.values() if v["kind"] == kind)
            if m:
                print(f"{kind} {split}: {m:.0f} min")


if __name__ == "__main__":
    main()
